"""The duty book: overrides, swaps and unavailability made in the console, stored and
audited, and the current Schedule built from them and the config.

Every process keeps its Schedule until the duty version in Redis moves on; a change made in
any process bumps it, so routers elsewhere pick the change up on their next request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta

from hotline.service.config import PointConfig
from hotline.service.duty import Away, Cover, Schedule, Segment
from hotline.service.i18n import N_, Refusal
from hotline.service.ports import Signals
from hotline.service.routing import RoutingPolicy
from hotline.service.store import Store
from hotline.service.store.database import Conn
from hotline.service.store.duty import (
    Change,
    active_in,
    insert_change,
    mark_removed,
    mark_removed_with_swap,
    start_swap,
)

log = logging.getLogger(__name__)
KEEP = timedelta(days=400)  # how far back changes are loaded (past calendars, reports)


class DutyError(Refusal):
    """A duty change that cannot be made."""


class DutyBook:
    def __init__(self, store: Store, signals: Signals, config: Callable[[], PointConfig]):
        self.store = store
        self.signals = signals
        self.config = config
        self._version: int | None = None
        self._schedule: Schedule | None = None
        self._schedule_config: PointConfig | None = None  # the config it was built with
        self._hours: tuple[PointConfig, RoutingPolicy] | None = None

    async def schedule(self, now: datetime) -> Schedule:
        """The schedule with every active change (reloaded when any process changed one;
        while the version cannot be read, the schedule in hand serves)."""
        version = await self.signals.version("duty")
        config = self.config()
        stale = version is not None and version != self._version
        if self._schedule is None or stale or config is not self._schedule_config:
            changes = await self.changes(now - KEEP, now + KEEP)
            for c in changes:
                if c.kind == "cover" and config.member(c.member_id) is None:
                    log.warning("override #%d names %r, no member of the point now: set aside",
                                c.id, c.member_id)  # fmt: skip
            covers = tuple(
                Cover(c.member_id, c.start, c.end, c.id, c.swap_id)
                for c in changes
                if c.kind == "cover" and config.member(c.member_id) is not None
            )
            aways = tuple(
                Away(c.member_id, c.start, c.end, c.id) for c in changes if c.kind == "away"
            )
            self._schedule = Schedule(config.duty, config.point.timezone, covers, aways)
            self._schedule_config = config
            self._version = version
        return self._schedule

    async def policy(self, now: datetime) -> RoutingPolicy:
        """Routing with the schedule as it stands now."""
        return RoutingPolicy(self.config(), await self.schedule(now))

    async def handling_resumes(self, at: datetime) -> datetime | None:
        """When a request received at `at` outside duty hours is taken up (None: at once).
        Duty hours and duty days come from the config alone (no duty change moves them), so
        this asks nothing of Redis or the database: it is on every text's answer."""
        config = self.config()
        if self._hours is None or self._hours[0] is not config:
            self._hours = (config, RoutingPolicy(config))
        return self._hours[1].handling_resumes(at)

    async def now_and_next(self, now: datetime) -> tuple[str | None, Segment | None]:
        """Who is on duty at `now` (None outside duty hours), and the next other member's
        turn within a week."""
        segments = (await self.schedule(now)).shifts(now, now + timedelta(days=8))
        if not segments:
            return None, None
        current = segments[0].member_id if segments[0].start <= now else None
        following = next((s for s in segments if s.member_id != current and s.start > now), None)
        return current, following

    async def changes(self, start: datetime, end: datetime) -> list[Change]:
        return await self.store.duty.active(start, end)

    def _member(self, member_id: str, field: str, *, on_duty: bool = False) -> str:
        """A member of the point; `on_duty` (covering a shift): one texts can reach."""
        member = self.config().member(member_id)
        if member is None:
            raise DutyError(field, N_("unknown member %(id)r"), id=member_id)
        if on_duty and member.phone is None:
            message = N_("%(name)s has no phone: duty texts cannot reach them")
            raise DutyError(field, message, name=member.name)
        return member_id

    @staticmethod
    async def _check_free(
        db: Conn,
        kind: str,
        start: datetime,
        end: datetime,
        member: str,
        now: datetime,
        ignore: AbstractSet[int] = frozenset(),
        field: str = "start",
    ) -> None:
        """Refuse an overlap, inside the write that stores the change: two heads adding
        overlapping overrides at once get one stored and one refused. `field` is the form's
        field the refusal names (a swap's shift: "first" or "second")."""
        if end <= start:
            raise DutyError("end", N_("must be after the start"))
        for name, at in ((field, start), ("end" if field == "start" else field, end)):
            if not now - KEEP < at < now + KEEP:  # the roster reads changes that near only
                raise DutyError(name, N_("at most %(days)d days from today"), days=KEEP.days)
        for change in await active_in(db, start, end):
            if change.kind != kind or change.id in ignore:
                continue
            if kind == "cover" or change.member_id == member:
                if kind == "cover":
                    raise DutyError(field, N_("overlaps an override (#%(id)d)"), id=change.id)
                raise DutyError(
                    field, N_("overlaps an absence of the same member (#%(id)d)"), id=change.id
                )

    async def _changed(self) -> None:
        await self.signals.bump("duty")

    async def add_cover(
        self, member: str, start: datetime, end: datetime, actor: str, now: datetime, note: str = ""
    ) -> int:
        """`member` covers [start, end), whoever the rotation says."""
        return await self._add("cover", member, start, end, actor, now, note)

    async def add_away(
        self, member: str, start: datetime, end: datetime, actor: str, now: datetime, note: str = ""
    ) -> int:
        return await self._add("away", member, start, end, actor, now, note)

    async def _add(
        self,
        kind: str,
        member: str,
        start: datetime,
        end: datetime,
        actor: str,
        now: datetime,
        note: str,
    ) -> int:
        self._member(member, "member", on_duty=kind == "cover")

        async def write(db: Conn) -> int:
            await self._check_free(db, kind, start, end, member, now)
            return await insert_change(db, kind, member, start, end, actor, now, note)

        change_id = await self.store.write(write)
        await self._changed()
        return change_id

    async def add_swap(
        self,
        first: datetime,
        second: datetime,
        actor: str,
        now: datetime,
        replaces: int | None = None,
    ) -> int:
        """The members of the two rotation shifts containing `first` and `second` trade.
        With `replaces`, that swap (both halves) is marked removed in the same write: an edit."""
        rotation = (await self.schedule(now)).rotation
        a, b = rotation.shift_at(first), rotation.shift_at(second)
        if a.start == b.start:
            raise DutyError("second", N_("pick a different shift to swap with"))
        if a.member_id == b.member_id:
            raise DutyError("second", N_("both shifts belong to the same member"))
        old_ids: set[int] = set()
        if replaces is not None:
            old = [c for c in await self.changes(now - KEEP, now + KEEP) if c.swap_id == replaces]
            if not old:
                raise DutyError("id", N_("no active change #%(id)d"), id=replaces)
            old_ids = {c.id for c in old}

        async def write(db: Conn) -> int:
            for shift, field in ((a, "first"), (b, "second")):
                await self._check_free(
                    db, "cover", shift.start, shift.end, shift.member_id, now, old_ids, field
                )
            for old_id in old_ids:
                if not await mark_removed(db, old_id, actor, now):
                    raise DutyError("id", N_("change #%(id)d was changed meanwhile"), id=old_id)
            first_id = await insert_change(db, "cover", b.member_id, a.start, a.end, actor, now)
            await start_swap(db, first_id)
            await insert_change(
                db, "cover", a.member_id, b.start, b.end, actor, now, swap_id=first_id
            )
            return first_id

        swap_id = await self.store.write(write)
        await self._changed()
        return swap_id

    async def edit(
        self, change_id: int, member: str, start: datetime, end: datetime, actor: str, now: datetime
    ) -> int:
        """Change an override's or absence's member and times: the old row is marked removed
        and a new one takes its place, so the history stays."""
        old = await self.store.duty.get_active(change_id)
        if old is None:
            raise DutyError("id", N_("no active change #%(id)d"), id=change_id)
        if old.swap_id is not None:
            raise DutyError("id", N_("edit a swap with its two dates"))
        self._member(member, "member", on_duty=old.kind == "cover")

        async def write(db: Conn) -> int:
            await self._check_free(db, old.kind, start, end, member, now, ignore={old.id})
            if not await mark_removed(db, old.id, actor, now):
                raise DutyError("id", N_("change #%(id)d was changed meanwhile"), id=old.id)
            return await insert_change(db, old.kind, member, start, end, actor, now, old.note)

        new_id = await self.store.write(write)
        await self._changed()
        return new_id

    async def remove(self, change_id: int, actor: str, now: datetime) -> None:
        """Take a change back (both halves of a swap); the row stays, marked removed."""
        removed = await self.store.write(
            lambda db: mark_removed_with_swap(db, change_id, actor, now)
        )
        if removed == 0:
            raise DutyError("id", N_("no active change #%(id)d"), id=change_id)
        await self._changed()
