"""The duty book: overrides, swaps and unavailability made in the console, stored and
audited, and the current Schedule built from them and the config.

Every process keeps its Schedule until the duty version in Redis moves on; a change made in
any process bumps it, so routers elsewhere pick the change up on their next request.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.duty import Away, Cover, Schedule
from hotline.service.ports import Signals
from hotline.service.routing import RoutingPolicy
from hotline.service.store import Store
from hotline.service.text import N_, Refusal

KEEP = timedelta(days=400)  # how far back changes are loaded (past calendars, reports)


class DutyError(Refusal):
    """A duty change that cannot be made."""


@dataclass(frozen=True)
class Change:
    id: int
    kind: str  # "cover" or "away"
    member_id: str
    start: datetime
    end: datetime
    swap_id: int | None
    note: str
    created_by: str
    created_at: datetime


def _change(r: aiosqlite.Row) -> Change:
    return Change(
        id=r["id"],
        kind=r["kind"],
        member_id=r["member_id"],
        start=from_utc_text(r["starts_at"]),
        end=from_utc_text(r["ends_at"]),
        swap_id=r["swap_id"],
        note=r["note"],
        created_by=r["created_by"],
        created_at=from_utc_text(r["created_at"]),
    )


class DutyBook:
    def __init__(self, store: Store, signals: Signals, config: Callable[[], PointConfig]):
        self.store = store
        self.signals = signals
        self.config = config
        self._version: int | None = None
        self._schedule: Schedule | None = None

    async def schedule(self, now: datetime) -> Schedule:
        """The schedule with every active change (reloaded when any process changed one;
        while the version cannot be read, the schedule in hand serves)."""
        version = await self.signals.version("duty")
        stale = version is not None and version != self._version
        if self._schedule is None or stale:
            changes = await self.changes(now - KEEP, now + KEEP)
            config = self.config()
            covers = tuple(
                Cover(c.member_id, c.start, c.end, c.id, c.swap_id)
                for c in changes
                if c.kind == "cover"
            )
            aways = tuple(
                Away(c.member_id, c.start, c.end, c.id) for c in changes if c.kind == "away"
            )
            self._schedule = Schedule(config.duty, config.point.timezone, covers, aways)
            self._version = version
        return self._schedule

    async def policy(self, now: datetime) -> RoutingPolicy:
        """Routing with the schedule as it stands now."""
        return RoutingPolicy(self.config(), await self.schedule(now))

    async def changes(self, start: datetime, end: datetime) -> list[Change]:
        rows = await self.store.fetch(
            "SELECT * FROM duty_changes WHERE removed_at IS NULL AND ends_at > ? AND starts_at < ?"
            " ORDER BY starts_at",
            (to_utc_text(start), to_utc_text(end)),
        )
        return [
            Change(
                r["id"],
                r["kind"],
                r["member_id"],
                from_utc_text(r["starts_at"]),
                from_utc_text(r["ends_at"]),
                r["swap_id"],
                r["note"],
                r["created_by"],
                from_utc_text(r["created_at"]),
            )
            for r in rows
        ]

    def _member(self, member_id: str, field: str) -> str:
        if self.config().member(member_id) is None:
            raise DutyError(field, N_("unknown member %(id)r"), id=member_id)
        return member_id

    async def _check_free(
        self,
        kind: str,
        start: datetime,
        end: datetime,
        member: str,
        ignore: AbstractSet[int] = frozenset(),
    ) -> None:
        if end <= start:
            raise DutyError("end", N_("must be after the start"))
        for change in await self.changes(start, end):
            if change.kind != kind or change.id in ignore:
                continue
            if kind == "cover" or change.member_id == member:
                if kind == "cover":
                    raise DutyError("start", N_("overlaps an override (#%(id)d)"), id=change.id)
                raise DutyError(
                    "start", N_("overlaps an absence of the same member (#%(id)d)"), id=change.id
                )

    async def _insert(
        self,
        db: aiosqlite.Connection,
        kind: str,
        member: str,
        start: datetime,
        end: datetime,
        actor: str,
        now: datetime,
        note: str = "",
        swap_id: int | None = None,
    ) -> int:
        cur = await db.execute(
            "INSERT INTO duty_changes (kind, member_id, starts_at, ends_at, swap_id, note,"
            " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (kind, member, to_utc_text(start), to_utc_text(end), swap_id, note, actor,
             to_utc_text(now)),
        )  # fmt: skip
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def _changed(self) -> None:
        await self.signals.bump("duty")

    async def add_cover(
        self, member: str, start: datetime, end: datetime, actor: str, now: datetime, note: str = ""
    ) -> int:
        """`member` covers [start, end), whoever the rotation says."""
        self._member(member, "member")
        await self._check_free("cover", start, end, member)
        change_id = await self.store.write(
            lambda db: self._insert(db, "cover", member, start, end, actor, now, note)
        )
        await self._changed()
        return change_id

    async def add_away(
        self, member: str, start: datetime, end: datetime, actor: str, now: datetime, note: str = ""
    ) -> int:
        self._member(member, "member")
        await self._check_free("away", start, end, member)
        change_id = await self.store.write(
            lambda db: self._insert(db, "away", member, start, end, actor, now, note)
        )
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
        for shift in (a, b):
            await self._check_free("cover", shift.start, shift.end, shift.member_id, ignore=old_ids)

        async def write(db: aiosqlite.Connection) -> int:
            for old_id in old_ids:
                cur = await db.execute(
                    "UPDATE duty_changes SET removed_by = ?, removed_at = ?"
                    " WHERE id = ? AND removed_at IS NULL",
                    (actor, to_utc_text(now), old_id),
                )
                if cur.rowcount != 1:
                    raise DutyError("id", N_("change #%(id)d was changed meanwhile"), id=old_id)
            first_id = await self._insert(db, "cover", b.member_id, a.start, a.end, actor, now, "")
            await db.execute(
                "UPDATE duty_changes SET swap_id = ? WHERE id = ?", (first_id, first_id)
            )
            await self._insert(
                db, "cover", a.member_id, b.start, b.end, actor, now, "", swap_id=first_id
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
        rows = await self.store.fetch(
            "SELECT * FROM duty_changes WHERE id = ? AND removed_at IS NULL", (change_id,)
        )
        if not rows:
            raise DutyError("id", N_("no active change #%(id)d"), id=change_id)
        old = _change(rows[0])
        if old.swap_id is not None:
            raise DutyError("id", N_("edit a swap with its two dates"))
        self._member(member, "member")
        await self._check_free(old.kind, start, end, member, ignore={old.id})

        async def write(db: aiosqlite.Connection) -> int:
            cur = await db.execute(
                "UPDATE duty_changes SET removed_by = ?, removed_at = ?"
                " WHERE id = ? AND removed_at IS NULL",
                (actor, to_utc_text(now), old.id),
            )
            if cur.rowcount != 1:
                raise DutyError("id", N_("change #%(id)d was changed meanwhile"), id=old.id)
            return await self._insert(db, old.kind, member, start, end, actor, now, old.note)

        new_id = await self.store.write(write)
        await self._changed()
        return new_id

    async def remove(self, change_id: int, actor: str, now: datetime) -> None:
        """Take a change back (both halves of a swap); the row stays, marked removed."""

        async def write(db: aiosqlite.Connection) -> int:
            cur = await db.execute(
                "UPDATE duty_changes SET removed_by = ?, removed_at = ? WHERE removed_at IS NULL"
                " AND (id = ? OR (swap_id IS NOT NULL AND swap_id ="
                " (SELECT swap_id FROM duty_changes WHERE id = ?)))",
                (actor, to_utc_text(now), change_id, change_id),
            )
            return cur.rowcount

        if await self.store.write(write) == 0:
            raise DutyError("id", N_("no active change #%(id)d"), id=change_id)
        await self._changed()
