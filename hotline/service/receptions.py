"""Themed reception events (主题接待): heads schedule them, businesses sign up on the public
page, deputies enter the requests raised there (walk-in, tagged with the event), and the
event's page shows where those requests stand (counts only).

Texts to the people signed up go through the outbox, once per purpose: a confirmation when
they sign up, a reminder the day before (from REMIND_FROM, point's time, by the workers'
timed work), and a notice if the event is cancelled."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from hotline.service.cases import FINISHED, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, translate
from hotline.service.links import Links
from hotline.service.outbox import Outbox
from hotline.service.periods import Period
from hotline.service.store import Store
from hotline.service.store.receptions import Reception, Signup, SignupRefused

log = logging.getLogger(__name__)
_ID = re.compile(r"[1-9][0-9]{0,11}")

# Reminders go out the day before between these hours (point's time): never at night.
REMIND_FROM, REMIND_UNTIL = time(9, 0), time(21, 0)
REFUSALS = {
    "full": N_("This reception is full."),
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


def _reminders(reception_id: int) -> str:
    """How the purpose keys of an event's day-before reminders begin."""
    return f"reception:{reception_id}:"


def reception_id(text: str) -> int | None:
    """A reception's id as a link or form gives it, or None when it cannot be one."""
    return int(text) if _ID.fullmatch(text) else None


def period_of(reception: Reception, config: PointConfig, today: date) -> Period:
    """The days a report of an event's requests covers when none are asked for: from the
    event's day (point's time) to today."""
    day = reception.starts_at.astimezone(config.point.timezone).date()
    return Period(day, max(day, today))


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
        """Change an event before it starts; False when it has started, is cancelled or has
        more sign-ups than the new capacity. When its time or place changes, the businesses
        signed up are told in the same write, and reminded again before a new time."""
        moved = (plan.starts_at, plan.ends_at) != (reception.starts_at, reception.ends_at)
        elsewhere = moved or plan.place != reception.place
        message = N_("The reception “%(topic)s” has changed: it is now %(when)s, at %(place)s.")

        def compose(now: Reception, signup: Signup) -> tuple[str, str] | None:
            if not elsewhere:
                return None
            purpose = f"reception-changed:{now.id}:{now.version}:{signup.phone}"
            return purpose, self._body(signup.language, message, now)

        queued = await self.store.receptions.change(
            reception.id, plan.fields(), self.clock(), moved=moved, compose=compose
        )
        await self.outbox.wake(queued)
        return queued is not None

    async def cancel(self, reception_id: int, actor: str) -> bool:
        """Cancel an event before it starts; the businesses signed up are told, in the same
        write. False when it has started, is cancelled already or is unknown."""
        message = N_("The reception “%(topic)s” on %(when)s is cancelled. We are sorry.")

        def compose(now: Reception, signup: Signup) -> tuple[str, str]:
            purpose = f"reception-cancelled:{now.id}:{signup.phone}"
            return purpose, self._body(signup.language, message, now)

        queued = await self.store.receptions.cancel(reception_id, actor, self.clock(), compose)
        await self.outbox.wake(queued)
        if queued is not None:
            log.info("reception %d cancelled by %s", reception_id, actor)
        return queued is not None

    async def sign_up(self, reception: Reception, given: dict[str, str], language: str) -> int:
        """Store a sign-up (company, contact, phone, raise_text) with its confirming text,
        in one write; SignupRefused when there is no seat."""
        now = self.clock()
        message = (
            N_("Signed up for the reception “%(topic)s”: %(when)s, %(place)s. We will remind"
               " you the day before.")
            if self.reminds(reception)
            else N_("Signed up for the reception “%(topic)s”: %(when)s, %(place)s.")
        )  # fmt: skip
        # Once per sign-up by the sign-up's own write (a repeat is refused as "taken"); the
        # token lets a number that signs up again after a withdrawal be confirmed again.
        purpose = f"reception-signup:{reception.id}:{given['phone']}:{secrets.token_hex(6)}"
        text = (purpose, self._body(language, message, reception))
        signup_id, queued = await self.store.receptions.sign_up(
            reception.id, given | {"language": language}, now, text
        )
        await self.outbox.wake(queued)
        return signup_id

    async def withdraw(self, reception: Reception, signup_id: int, actor: str) -> bool:
        """A head takes a sign-up back before the event (the business called to say it
        cannot come, or the sign-up was made in another's name): its place is free again,
        and its contact is told by text, in the same write. False when it cannot be: gone
        already, or the event started or is cancelled."""
        message = N_("Your sign-up for the reception “%(topic)s” (%(when)s) is withdrawn.")

        def compose(now: Reception, signup: Signup) -> tuple[str, str]:
            purpose = f"reception-withdrawn:{now.id}:{signup.phone}:{secrets.token_hex(6)}"
            return purpose, self._body(signup.language, message, now)

        queued = await self.store.receptions.withdraw(
            reception.id, signup_id, self.clock(), compose, _reminders(reception.id), actor
        )
        await self.outbox.wake(queued)
        if queued is not None:
            log.info("sign-up %d to reception %d withdrawn by %s", signup_id, reception.id, actor)
        return queued is not None

    def reminds(self, reception: Reception) -> bool:
        """Whether a sign-up now still gets the reminder: the event is on a later day, and
        the reminders for it have not had their last hour (REMIND_UNTIL) yet."""
        tz = self.config().point.timezone
        local = self.clock().astimezone(tz)
        day = reception.starts_at.astimezone(tz).date()
        tomorrow = local.date() + timedelta(days=1)
        return day > tomorrow or (day == tomorrow and local.time() < REMIND_UNTIL)

    async def standing(self, reception_id: int) -> Standing:
        counts = await self.store.receptions.statuses(reception_id)
        finished = sum(n for status, n in counts.items() if status in FINISHED)
        total = sum(counts.values())
        return Standing(total, total - finished, finished, counts)

    async def remind_due(self, now: datetime) -> int:
        """Queue the day-before reminder of every sign-up for an event that starts tomorrow
        (point's date), between REMIND_FROM and REMIND_UNTIL (never at night: a sign-up
        after that gets none); returns how many were queued. Once per sign-up and version of
        the event whoever runs it: the outbox's purpose key, then `reminded_at`."""
        tz = self.config().point.timezone
        local = now.astimezone(tz)
        if not REMIND_FROM <= local.time() < REMIND_UNTIL:
            return 0
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=tz)
        due = await self.store.receptions.to_remind(tomorrow, tomorrow + timedelta(days=1))
        message = N_("Reminder: the reception “%(topic)s” is tomorrow, %(when)s, at %(place)s.")
        reminded = 0
        for reception, signup in due:
            # Once per sign-up and version: claimed in the write that queues it.
            signed = to_utc_text(signup.created_at)
            purpose = f"{_reminders(reception.id)}{reception.version}:{signup.phone}:{signed}"
            body = self._body(signup.language, message, reception)
            queued = await self.store.receptions.remind(reception, signup, (purpose, body), now)
            await self.outbox.wake(queued)
            reminded += bool(queued)
        return reminded

    def _when(self, reception: Reception) -> str:
        tz = self.config().point.timezone
        starts, ends = reception.starts_at.astimezone(tz), reception.ends_at.astimezone(tz)
        return f"{starts:%Y-%m-%d %H:%M}–{ends:%H:%M}"

    def _body(self, language: str, message: str, reception: Reception) -> str:
        """A text to a signed-up contact, in their language, with the event's page."""
        about = {"topic": reception.topic, "when": self._when(reception), "place": reception.place}
        text = translate(language, message) % about
        link = self.links.reception(reception.id)
        return f"{text} {link}" if link else text
