"""Themed reception events (主题接待): heads schedule them, businesses sign up on the public
page, deputies enter the requests raised there (walk-in, tagged with the event), and the
event's page shows where those requests stand (counts only).

Texts to the people signed up go through the outbox, once per purpose: a confirmation when
they sign up, a reminder the day before (from REMIND_FROM, point's time, by the workers'
timed work), and a notice if the event is cancelled."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, time, timedelta
from typing import Any

from hotline.service.cases import FINISHED, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, translate
from hotline.service.links import Links
from hotline.service.outbox import Outbox
from hotline.service.store import Store
from hotline.service.store.receptions import Reception, Signup, SignupRefused

log = logging.getLogger(__name__)
_ID = re.compile(r"[1-9][0-9]{0,11}")

REMIND_FROM = time(9, 0)  # reminders go out from this hour the day before: not at night
REFUSALS = {
    "full": N_("This reception is full."),
    "taken": N_("This phone number is signed up for this reception already."),
    "closed": N_("Sign-up for this reception is closed."),
}

__all__ = [
    "REFUSALS", "Plan", "Reception", "Receptions", "Signup", "SignupRefused", "Standing",
]  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """An event as a head planned it: local times already turned into UTC-aware ones."""

    topic: str
    details: str
    place: str
    starts_at: datetime
    ends_at: datetime
    deputies: tuple[str, ...]
    departments: tuple[str, ...]
    capacity: int

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Standing:
    """Where the requests raised at an event stand: how many in all, still open, resolved
    or closed, and per status."""

    total: int
    open: int
    finished: int
    by_status: dict[str, int]


def reception_id(text: str) -> int | None:
    """A reception's id as a link or form gives it, or None when it cannot be one."""
    return int(text) if _ID.fullmatch(text) else None


class Receptions:
    def __init__(
        self,
        store: Store,
        outbox: Outbox,
        config: Callable[[], PointConfig],
        links: Links,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.config = config
        self.links = links
        self.clock = clock

    async def schedule(self, plan: Plan, actor: str) -> int:
        reception_id = await self.store.receptions.add(plan.fields(), actor, self.clock())
        log.info("reception %d scheduled by %s: %s", reception_id, actor, plan.topic)
        return reception_id

    async def change(self, reception: Reception, plan: Plan) -> bool:
        """Change an event; False when it is cancelled or has fewer seats than are taken.
        When its time or place changes, the businesses signed up are told (once per new
        time and place), and reminded again before a new time."""
        moved = (plan.starts_at, plan.ends_at) != (reception.starts_at, reception.ends_at)
        elsewhere = moved or plan.place != reception.place
        if not await self.store.receptions.change(reception.id, plan.fields(), moved=moved):
            return False
        changed = await self.store.receptions.get(reception.id)
        if elsewhere and changed is not None:
            where = f"{to_utc_text(plan.starts_at)}|{to_utc_text(plan.ends_at)}|{plan.place}"
            mark = hashlib.sha256(where.encode()).hexdigest()[:16]
            message = N_("The reception “%(topic)s” has changed: it is now %(when)s, at %(place)s.")
            for signup in await self.store.receptions.signups(reception.id):
                await self._text(signup, f"reception-changed:{signup.id}:{mark}", message, changed)
        return True

    async def cancel(self, reception_id: int, actor: str) -> bool:
        """Cancel an event; the businesses signed up are told (once each)."""
        now = self.clock()
        if not await self.store.receptions.cancel(reception_id, actor, now):
            return False
        reception = await self.store.receptions.get(reception_id)
        if reception is not None and reception.starts_at > now:
            for signup in await self.store.receptions.signups(reception_id):
                message = N_("The reception “%(topic)s” on %(when)s is cancelled. We are sorry.")
                await self._text(signup, f"reception-cancelled:{signup.id}", message, reception)
        log.info("reception %d cancelled by %s", reception_id, actor)
        return True

    async def sign_up(self, reception: Reception, given: dict[str, str], language: str) -> int:
        """Store a sign-up (company, contact, phone, raise_text) and confirm it by text;
        SignupRefused when there is no seat."""
        now = self.clock()
        signup_id = await self.store.receptions.sign_up(
            reception.id, given | {"language": language}, now
        )
        signup = Signup(id=signup_id, reception_id=reception.id, language=language,
                        created_at=now, **given)  # fmt: skip
        message = (
            N_("Signed up for the reception “%(topic)s”: %(when)s, %(place)s. We will remind"
               " you the day before.")
            if self.reminds(reception)
            else N_("Signed up for the reception “%(topic)s”: %(when)s, %(place)s.")
        )  # fmt: skip
        await self._text(signup, f"reception-signup:{signup_id}", message, reception)
        return signup_id

    def reminds(self, reception: Reception) -> bool:
        """Whether a sign-up now still gets the reminder: the event is on a later day."""
        tz = self.config().point.timezone
        return reception.starts_at.astimezone(tz).date() > self.clock().astimezone(tz).date()

    async def standing(self, reception_id: int) -> Standing:
        counts = await self.store.receptions.statuses(reception_id)
        finished = sum(n for status, n in counts.items() if status in FINISHED)
        total = sum(counts.values())
        return Standing(total, total - finished, finished, counts)

    async def remind_due(self, now: datetime) -> int:
        """Queue the day-before reminder of every sign-up for an event that starts tomorrow
        (point's date), from REMIND_FROM on; returns how many were queued. Once per sign-up
        whoever runs it: the outbox's purpose key, then `reminded_at`."""
        tz = self.config().point.timezone
        local = now.astimezone(tz)
        if local.time() < REMIND_FROM:
            return 0
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=tz)
        due = await self.store.receptions.to_remind(tomorrow, tomorrow + timedelta(days=1))
        for reception, signup in due:
            message = N_("Reminder: the reception “%(topic)s” is tomorrow, %(when)s, at %(place)s.")
            # Once per sign-up and start time: a moved event is reminded of again.
            purpose = f"reception:{signup.id}:{to_utc_text(reception.starts_at)}"
            await self._text(signup, purpose, message, reception)
        if due:
            await self.store.receptions.reminded([s.id for _, s in due], now)
        return len(due)

    def _when(self, reception: Reception) -> str:
        tz = self.config().point.timezone
        starts, ends = reception.starts_at.astimezone(tz), reception.ends_at.astimezone(tz)
        return f"{starts:%Y-%m-%d %H:%M}–{ends:%H:%M}"

    async def _text(self, signup: Signup, purpose: str, message: str, reception: Reception) -> None:
        """A text to a signed-up contact, in their language, once per purpose."""
        about = {"topic": reception.topic, "when": self._when(reception), "place": reception.place}
        text = translate(signup.language, message) % about
        link = self.links.reception(reception.id)
        body = f"{text} {link}" if link else text
        await self.outbox.enqueue(purpose, signup.phone, body, self.clock())
