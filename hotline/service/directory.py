"""The point's directory: members, departments and categories, as the config file sets them
and as heads and admins edit them in the console.

The file stays the base. A console edit is stored in SQLite as an override of one entry (the
whole entry as the file would write it, or its removal) and logged; the point config in force
is the file with every override applied, checked by the same `parse_config` that checks the
file. So restarting with an edited file keeps the console's edits, and an edit the file no
longer admits (a category whose department the file has dropped, say) is set aside whole,
logged and shown in the console, never half-applied.

Every process keeps its config until the directory version in Redis moves on; the process
that makes a change rebuilds at once, the others on their next refresh (every few seconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.intake import REDIS_DOWN
from hotline.service.cases import FINISHED, from_utc_text, to_utc_text
from hotline.service.config import ConfigError, PointConfig, parse_config, read_config_data
from hotline.service.store import Store, write_members
from hotline.service.text import N_, Refusal

log = logging.getLogger(__name__)

KINDS = {"members": "id", "departments": "id", "categories": "code"}  # kind -> key field


class DirectoryError(Refusal):
    """A directory change that cannot be made."""


class NotAllowed(Refusal):
    """A directory change this member may not make (answered with 403)."""


@dataclass(frozen=True)
class Override:
    kind: str
    key: str
    record: dict[str, Any] | None  # None: the entry is removed
    seq: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class Entry:
    """One directory entry as the console lists it."""

    key: str
    record: dict[str, Any] | None  # as it stands; None when removed in the console
    in_file: bool
    override: Override | None  # the console's edit, if any
    problems: tuple[str, ...] = ()  # why that edit is set aside (not in force), if it is


@dataclass(frozen=True)
class _State:
    data: dict[str, Any]
    config: PointConfig
    overrides: tuple[Override, ...]
    set_aside: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


def _apply(
    data: dict[str, Any], kind: str, key: str, record: dict[str, Any] | None
) -> dict[str, Any]:
    """`data` with one entry of `kind` replaced, added (at the end) or removed."""
    entries = list(data.get(kind, []))
    index = next((i for i, e in enumerate(entries) if e.get(KINDS[kind]) == key), None)
    if index is None:
        if record is not None:
            entries.append(record)
    elif record is None:
        del entries[index]
    else:
        entries[index] = record
    return data | {kind: entries}


def _override(row: Any) -> Override:
    return Override(
        row["kind"],
        row["key"],
        json.loads(row["record"]) if row["record"] is not None else None,
        row["seq"],
        row["updated_by"],
        from_utc_text(row["updated_at"]),
    )


class Directory:
    def __init__(self, base: dict[str, Any], source: str) -> None:
        """`base` is the parsed TOML of the config file; it is checked here, at once."""
        self.base = base
        self.source = source
        self._state = _State(base, parse_config(base, source), ())
        self._store: Store | None = None
        self._redis: redis.Redis | None = None
        self._version = -1

    @classmethod
    def from_file(cls, path: Path) -> Directory:
        return cls(read_config_data(path), str(path))

    @property
    def config(self) -> PointConfig:
        """The point config in force: the file with the console's edits."""
        return self._state.config

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the directory is not open")
        return self._store

    # -- loading ----------------------------------------------------------------------

    def _build(self, overrides: Sequence[Override]) -> _State:
        candidate = self.base
        for o in overrides:
            candidate = _apply(candidate, o.kind, o.key, o.record)
        try:  # the usual case: every edit fits
            return _State(candidate, parse_config(candidate, "console edits"), tuple(overrides))
        except ConfigError:
            pass
        data, config = self.base, parse_config(self.base, self.source)
        aside: dict[tuple[str, str], tuple[str, ...]] = {}
        for o in overrides:
            candidate = _apply(data, o.kind, o.key, o.record)
            try:
                config = parse_config(candidate, "console edits")
            except ConfigError as exc:
                aside[(o.kind, o.key)] = tuple(exc.problems)
                log.warning(
                    "console edit to %s %r set aside: %s", o.kind, o.key, "; ".join(exc.problems)
                )
                continue
            data = candidate
        return _State(data, config, tuple(overrides), aside)

    async def open(self, store: Store, client: redis.Redis | None = None) -> None:
        """Load the console's edits and mirror the members into the store."""
        self._store, self._redis = store, client
        await self.reload()
        await store.write(lambda db: write_members(db, self.config.members))

    async def _overrides_from_reader(self) -> list[Override]:
        rows = await self.store.fetch("SELECT * FROM directory_overrides ORDER BY seq")
        return [_override(r) for r in rows]

    async def _current_version(self) -> int:
        if self._redis is None:
            return -1
        with contextlib.suppress(*REDIS_DOWN):
            value = await self._redis.get(keys.DIRECTORY_VERSION)
            return int(value or 0)
        return self._version  # Redis unreachable: keep what we have

    async def refresh(self) -> bool:
        """Rebuild if any process changed the directory since; True when it did."""
        if await self._current_version() == self._version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        """Rebuild from the stored edits, whatever the version says."""
        version = await self._current_version()  # first: a change landing meanwhile bumps it
        self._state = self._build(await self._overrides_from_reader())
        self._version = version

    # -- reading ----------------------------------------------------------------------

    def entries(self, kind: str) -> list[Entry]:
        """Every entry of a kind: those in force in config order, then those removed or set
        aside in the console."""
        state, field_name = self._state, KINDS[kind]
        overrides = {o.key: o for o in state.overrides if o.kind == kind}
        in_file = {e[field_name] for e in self.base.get(kind, [])}
        shown: list[Entry] = []
        for record in state.data.get(kind, []):
            key = record[field_name]
            problems = state.set_aside.get((kind, key), ())
            shown.append(Entry(key, record, key in in_file, overrides.get(key), problems))
        listed = {e.key for e in shown}
        for key, o in overrides.items():
            if key not in listed:
                problems = state.set_aside.get((kind, key), ())
                shown.append(
                    Entry(key, o.record if problems else None, key in in_file, o, problems)
                )
        return shown

    def entry(self, kind: str, key: str) -> Entry | None:
        return next((e for e in self.entries(kind) if e.key == key), None)

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        rows = await self.store.fetch(
            "SELECT action, actor, at FROM directory_log WHERE kind = ? AND key = ?"
            " ORDER BY id DESC",
            (kind, key),
        )
        return [
            {"action": r["action"], "actor": r["actor"], "at": from_utc_text(r["at"])} for r in rows
        ]

    # -- changing ---------------------------------------------------------------------

    async def save(
        self, kind: str, record: dict[str, Any], actor: Actor, now: datetime, *, new: bool
    ) -> None:
        """Add an entry (`new`) or replace one in force; `record` is the whole entry."""
        await self.reload()  # check against every process's latest edits
        key = record[KINDS[kind]]
        current = self.entry(kind, key)
        if new and current is not None and current.record is not None:
            raise DirectoryError(KINDS[kind], N_("%(key)s is already taken"), key=key)
        if not new and (current is None or current.record is None):
            raise DirectoryError(KINDS[kind], N_("there is no %(key)s to edit"), key=key)
        if kind == "members":
            self._check_member(record, current, actor)
        elif kind == "categories":
            department = record.get("department")
            if department and self.config.department(department) is None:
                raise DirectoryError("department", N_("unknown department %(id)s"), id=department)
        await self._change(kind, key, record, "add" if new else "edit", actor.id, now)

    async def remove(self, kind: str, key: str, actor: Actor, now: datetime) -> None:
        await self.reload()  # check against every process's latest edits
        current = self.entry(kind, key)
        if current is None or current.record is None:
            raise DirectoryError(KINDS[kind], N_("there is no %(key)s to remove"), key=key)
        if kind == "members":
            await self._check_member_removal(key, current, actor, now)
        elif kind == "departments":
            await self._check_department_removal(key)
        await self._change(kind, key, None, "remove", actor.id, now)

    async def revert(self, kind: str, key: str, actor: Actor, now: datetime) -> None:
        """Drop the console's edit of an entry the file has: the file's version holds again."""
        await self.reload()  # check against every process's latest edits
        current = self.entry(kind, key)
        if current is None or current.override is None or not current.in_file:
            raise DirectoryError(KINDS[kind], N_("%(key)s has no console edit to undo"), key=key)
        if kind == "members":
            self._check_rights(actor, key, current.record, _file_record(self.base, kind, key))
        await self._change(kind, key, None, "revert", actor.id, now)

    def _check_rights(
        self, actor: Actor, key: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        """May `actor` change member `key` from `before` to `after` (None: absent)?"""
        if key == actor.id and (after is None or (before or {}).get("role") != after.get("role")):
            raise NotAllowed("id", N_("you cannot change your own role or remove yourself"))
        if actor.role != "admin" and any(r and r.get("role") == "admin" for r in (before, after)):
            raise NotAllowed("role", N_("only an admin can add, change or remove admins"))

    def check_password_reset(self, actor: Actor, key: str) -> None:
        """May `actor` set member `key`'s password (which signs them out everywhere)?"""
        target = self.config.member(key)
        if target is None:
            raise DirectoryError("id", N_("there is no %(key)s to edit"), key=key)
        if key == actor.id:
            raise NotAllowed("password", N_("change your own password on the Password page"))
        if target.role == "admin" and actor.role != "admin":
            raise NotAllowed("role", N_("only an admin can add, change or remove admins"))

    def _check_member(self, record: dict[str, Any], current: Entry | None, actor: Actor) -> None:
        key = record["id"]
        self._check_rights(actor, key, current.record if current else None, record)
        for company in record.get("companies", []):
            paired = next(
                (m for m in self.config.members if company in m.companies and m.id != key), None
            )
            if paired is not None:
                raise DirectoryError(
                    "companies",
                    N_("%(company)s is already paired with %(member)s"),
                    company=company,
                    member=paired.name,
                )

    async def _check_member_removal(
        self, key: str, current: Entry, actor: Actor, now: datetime
    ) -> None:
        self._check_rights(actor, key, current.record, None)
        duty = self.config.duty
        if key in duty.rotation:
            raise DirectoryError(
                "id",
                N_("%(key)s is on the duty rotation: take them off it in the point config first"),
                key=key,
            )
        if key == duty.standing_head:
            raise DirectoryError(
                "id",
                N_("%(key)s is the standing head: name another in the point config first"),
                key=key,
            )
        count = await self._open_cases("assignee_id", key)
        if count:
            raise DirectoryError(
                "id",
                N_("%(key)s has %(count)d open case(s): reassign them first"),
                key=key,
                count=count,
            )
        rows = await self.store.fetch(
            "SELECT count(*) FROM duty_changes WHERE member_id = ? AND kind = 'cover'"
            " AND removed_at IS NULL AND ends_at > ?",
            (key, to_utc_text(now)),
        )
        if rows[0][0]:
            raise DirectoryError(
                "id", N_("%(key)s has duty overrides still to come: remove them first"), key=key
            )

    async def _open_cases(self, column: str, key: str) -> int:
        marks = ", ".join("?" for _ in FINISHED)
        rows = await self.store.fetch(
            f"SELECT count(*) FROM cases WHERE {column} = ? AND status NOT IN ({marks})",  # noqa: S608 - names are ours
            (key, *sorted(FINISHED)),
        )
        return int(rows[0][0])

    async def _check_department_removal(self, key: str) -> None:
        users = [c.code for c in self.config.categories if c.department == key]
        if users:
            raise DirectoryError(
                "id",
                N_("categories %(codes)s refer to %(key)s: change them first"),
                codes=", ".join(users),
                key=key,
            )
        count = await self._open_cases("department_id", key)
        if count:
            raise DirectoryError(
                "id",
                N_("%(count)d open case(s) are referred to %(key)s"),
                key=key,
                count=count,
            )

    async def _change(
        self,
        kind: str,
        key: str,
        record: dict[str, Any] | None,
        action: str,
        actor: str,
        now: datetime,
    ) -> None:
        """Store one change, checked against the directory as it is in the database at that
        moment (another process may have changed it), mirror the members, and log it."""
        stamp = to_utc_text(now)

        async def write(db: aiosqlite.Connection) -> _State:
            async with db.execute("SELECT * FROM directory_overrides ORDER BY seq") as cur:
                before = self._build([_override(r) for r in await cur.fetchall()])
            rest = [o for o in before.overrides if (o.kind, o.key) != (kind, key)]
            if action != "revert":
                seq = max((o.seq for o in before.overrides), default=0) + 1
                rest.append(Override(kind, key, record, seq, actor, now))
            after = self._build(rest)
            broken = [
                p
                for k, problems in after.set_aside.items()
                if k == (kind, key) or k not in before.set_aside
                for p in problems
            ]
            if broken:
                raise DirectoryError(
                    "",
                    N_("the point config would not hold: %(problems)s"),
                    problems="; ".join(broken),
                )
            if action == "revert":
                await db.execute(
                    "DELETE FROM directory_overrides WHERE kind = ? AND key = ?", (kind, key)
                )
            else:
                await db.execute(
                    "INSERT INTO directory_overrides (kind, key, record, seq, updated_by,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE"
                    " SET record = excluded.record, seq = excluded.seq,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (kind, key, _json(record), rest[-1].seq, actor, stamp),
                )
            await db.execute(
                "INSERT INTO directory_log (kind, key, action, record, actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, key, action, _json(record), actor, stamp),
            )
            await write_members(db, after.config.members)
            return after

        self._state = await self.store.write(write)
        if self._redis is not None:
            try:
                self._version = int(await self._redis.incr(keys.DIRECTORY_VERSION))
            except REDIS_DOWN:
                log.warning(
                    "directory changed but Redis is unreachable: other processes "
                    "pick the change up when they restart"
                )


@dataclass(frozen=True)
class Actor:
    """Who makes a directory change."""

    id: str
    role: str


def _json(record: dict[str, Any] | None) -> str | None:
    return None if record is None else json.dumps(record, ensure_ascii=False, sort_keys=True)


def _file_record(base: dict[str, Any], kind: str, key: str) -> dict[str, Any] | None:
    return next((e for e in base.get(kind, []) if e.get(KINDS[kind]) == key), None)
