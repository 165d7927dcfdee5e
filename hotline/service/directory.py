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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.intake import REDIS_DOWN
from hotline.service.accounts import write_password
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


class Changed(DirectoryError):
    """The entry changed since the actor's form showed it (answered with 409)."""


@dataclass(frozen=True)
class Override:
    kind: str
    key: str
    record: dict[str, Any] | None  # None: the entry is removed
    seq: int  # the order edits apply in: when the entry was first edited
    in_file: bool  # whether the file had the entry when the edit was made
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

    @property
    def seq(self) -> int:
        """Which edit the entry is at (0: as in the file): forms carry it to notice that
        someone else changed the entry meanwhile."""
        return self.override.seq if self.override else 0


@dataclass(frozen=True)
class Actor:
    """Who makes a directory change."""

    id: str
    role: str


@dataclass(frozen=True)
class _State:
    data: dict[str, Any]
    config: PointConfig
    overrides: tuple[Override, ...]
    set_aside: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


# Why an edit is set aside when the file moved under it (catalog ids: shown translated).
GONE_FROM_FILE = N_("the config file no longer has this entry; save it again to keep it")
BACK_IN_FILE = N_("the config file has this entry again; remove it again to hide it")


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
        bool(row["in_file"]),
        row["updated_by"],
        from_utc_text(row["updated_at"]),
    )


async def _stored_overrides(db: aiosqlite.Connection) -> list[Override]:
    async with db.execute("SELECT * FROM directory_overrides ORDER BY seq") as cur:
        return [_override(r) for r in await cur.fetchall()]


async def _count(db: aiosqlite.Connection, sql: str, params: tuple[Any, ...]) -> int:
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _open_cases(db: aiosqlite.Connection, column: str, key: str) -> int:
    marks = ", ".join("?" for _ in FINISHED)
    return await _count(
        db,
        f"SELECT count(*) FROM cases WHERE {column} = ? AND status NOT IN ({marks})",  # noqa: S608 - names are ours
        (key, *sorted(FINISHED)),
    )


def _json(record: dict[str, Any] | None) -> str | None:
    return None if record is None else json.dumps(record, ensure_ascii=False, sort_keys=True)


Check = Callable[[_State, aiosqlite.Connection], Awaitable[None]]


class Directory:
    def __init__(self, base: dict[str, Any], source: str) -> None:
        """`base` is the parsed TOML of the config file; it is checked here, at once."""
        self.base = base
        self.source = source
        self._in_file = {
            kind: {e.get(key_field) for e in base.get(kind, []) if isinstance(e, dict)}
            for kind, key_field in KINDS.items()
        }
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
        """The file with `overrides` applied in order; an edit that does not fit is set aside
        whole (and logged), and the rest still apply."""
        aside: dict[tuple[str, str], tuple[str, ...]] = {}
        usable = []
        for o in overrides:
            in_file = o.key in self._in_file[o.kind]
            if o.record is not None and o.in_file and not in_file:
                aside[(o.kind, o.key)] = (GONE_FROM_FILE,)
            elif o.record is None and not o.in_file and in_file:
                aside[(o.kind, o.key)] = (BACK_IN_FILE,)
            else:
                usable.append(o)
        candidate = self.base
        for o in usable:
            candidate = _apply(candidate, o.kind, o.key, o.record)
        try:  # the usual case: every edit fits
            config = parse_config(candidate, "console edits")
        except ConfigError:
            candidate, config = self.base, parse_config(self.base, self.source)
            for o in usable:  # one at a time, keeping those that fit
                attempt = _apply(candidate, o.kind, o.key, o.record)
                try:
                    config = parse_config(attempt, "console edits")
                except ConfigError as exc:
                    aside[(o.kind, o.key)] = tuple(exc.problems)
                    continue
                candidate = attempt
        for (kind, key), problems in aside.items():
            log.warning("console edit to %s %r set aside: %s", kind, key, "; ".join(problems))
        return _State(candidate, config, tuple(overrides), aside)

    async def open(self, store: Store, client: redis.Redis | None = None) -> None:
        """Load the console's edits and mirror the members into the store (in one write, so
        a change another process makes meanwhile is not undone)."""
        self._store, self._redis = store, client
        version = await self._current_version()

        async def load(db: aiosqlite.Connection) -> _State:
            state = self._build(await _stored_overrides(db))
            await write_members(db, state.config.members)
            return state

        self._state = await store.write(load)
        self._version = version

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
        rows = await self.store.fetch("SELECT * FROM directory_overrides ORDER BY seq")
        self._state = self._build([_override(r) for r in rows])
        self._version = version

    # -- reading ----------------------------------------------------------------------

    def entries(self, kind: str, state: _State | None = None) -> list[Entry]:
        """Every entry of a kind: those in force in config order, then those removed or set
        aside in the console."""
        state = state or self._state
        key_field, in_file = KINDS[kind], self._in_file[kind]
        overrides = {o.key: o for o in state.overrides if o.kind == kind}
        shown: list[Entry] = []
        for record in state.data.get(kind, []):
            key = record[key_field]
            problems = state.set_aside.get((kind, key), ())
            shown.append(Entry(key, record, key in in_file, overrides.get(key), problems))
        listed = {e.key for e in shown}
        for key, o in overrides.items():
            if key not in listed:
                problems = state.set_aside.get((kind, key), ())
                record = o.record if problems else None
                shown.append(Entry(key, record, key in in_file, o, problems))
        return shown

    def entry(self, kind: str, key: str, state: _State | None = None) -> Entry | None:
        return next((e for e in self.entries(kind, state) if e.key == key), None)

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        rows = await self.store.fetch(
            "SELECT action, actor, at FROM directory_log WHERE kind = ? AND key = ?"
            " ORDER BY id DESC",
            (kind, key),
        )
        return [
            {"action": r["action"], "actor": r["actor"], "at": from_utc_text(r["at"])} for r in rows
        ]

    # -- changing: every check runs inside the write, on the stored state ----------------

    async def save(
        self,
        kind: str,
        record: dict[str, Any],
        actor: Actor,
        now: datetime,
        *,
        new: bool,
        seen: int | None = None,
        password_hash: str | None = None,
    ) -> None:
        """Add an entry (`new`) or replace one; `record` is the whole entry. `seen` is the
        edit the actor's form showed (Entry.seq): if the entry moved on since, Changed.
        A new member may come with a first password (its hash)."""
        key = record[KINDS[kind]]

        async def check(before: _State, db: aiosqlite.Connection) -> None:
            current = self.entry(kind, key, before)
            if new and current is not None and current.record is not None:
                raise DirectoryError(KINDS[kind], N_("%(key)s is already taken"), key=key)
            if not new and (current is None or current.record is None):
                raise DirectoryError(KINDS[kind], N_("there is no %(key)s to edit"), key=key)
            if seen is not None and (current.seq if current else 0) != seen:
                raise Changed(
                    "", N_("someone changed this entry meanwhile: check it and save again")
                )
            if kind == "members":
                _check_member(before.config, record, current, actor)
            elif kind == "categories":
                department = record.get("department")
                if department and before.config.department(department) is None:
                    raise DirectoryError(
                        "department", N_("unknown department %(id)s"), id=department
                    )

        async def then(db: aiosqlite.Connection) -> None:
            if password_hash is not None:
                await write_password(db, key, password_hash, to_utc_text(now))

        action = "add" if new else "edit"
        await self._change(kind, key, record, action, actor.id, now, check, then)

    async def remove(
        self, kind: str, key: str, actor: Actor, now: datetime, *, seen: int | None = None
    ) -> None:
        async def check(before: _State, db: aiosqlite.Connection) -> None:
            current = self.entry(kind, key, before)
            if current is None or current.record is None:
                raise DirectoryError(KINDS[kind], N_("there is no %(key)s to remove"), key=key)
            if seen is not None and current.seq != seen:
                raise Changed(
                    "", N_("someone changed this entry meanwhile: check it and save again")
                )
            if kind == "members":
                await _check_member_removal(db, before.config, key, current, actor, now)
            elif kind == "departments":
                await _check_department_removal(db, before.config, key)
            else:
                count = await _open_cases(db, "category", key)
                if count:
                    raise DirectoryError(
                        "code", N_("%(count)d open case(s) have this topic"), count=count
                    )

        async def then(db: aiosqlite.Connection) -> None:
            if kind == "members":  # no way back in with the old password or sessions
                await write_password(db, key, None, to_utc_text(now))

        await self._change(kind, key, None, "remove", actor.id, now, check, then)

    async def revert(self, kind: str, key: str, actor: Actor, now: datetime) -> None:
        """Drop the console's edit of an entry the file has: the file's version holds again."""

        async def check(before: _State, db: aiosqlite.Connection) -> None:
            current = self.entry(kind, key, before)
            if current is None or current.override is None or not current.in_file:
                raise DirectoryError(
                    KINDS[kind], N_("%(key)s has no console edit to undo"), key=key
                )
            if kind == "members":
                after = next(e for e in self.base["members"] if e["id"] == key)
                _check_rights(actor, key, current.record, after)

        await self._change(kind, key, None, "revert", actor.id, now, check)

    async def set_password(self, actor: Actor, key: str, password_hash: str, now: datetime) -> None:
        """Give member `key` a new password (which signs them out everywhere), logged."""

        async def write(db: aiosqlite.Connection) -> None:
            before = self._build(await _stored_overrides(db))
            target = before.config.member(key)
            if target is None:
                raise DirectoryError("id", N_("there is no %(key)s to edit"), key=key)
            if key == actor.id:
                raise NotAllowed("password", N_("change your own password on the Password page"))
            if target.role == "admin" and actor.role != "admin":
                raise NotAllowed("role", N_("only an admin can add, change or remove admins"))
            stamp = to_utc_text(now)
            await write_password(db, key, password_hash, stamp)
            await db.execute(
                "INSERT INTO directory_log (kind, key, action, record, actor, at)"
                " VALUES ('members', ?, 'password', NULL, ?, ?)",
                (key, actor.id, stamp),
            )

        await self.store.write(write)

    async def _change(
        self,
        kind: str,
        key: str,
        record: dict[str, Any] | None,
        action: str,
        actor: str,
        now: datetime,
        check: Check,
        then: Callable[[aiosqlite.Connection], Awaitable[None]] | None = None,
    ) -> None:
        """Store one change in one write: checked against the directory as stored at that
        moment (another process may have changed it), with the members mirrored and the
        change logged."""
        stamp = to_utc_text(now)

        async def write(db: aiosqlite.Connection) -> _State:
            before = self._build(await _stored_overrides(db))
            await check(before, db)
            existing = next((o for o in before.overrides if (o.kind, o.key) == (kind, key)), None)
            rest = [o for o in before.overrides if o is not existing]
            if action != "revert":
                seq = existing.seq if existing else max((o.seq for o in rest), default=0) + 1
                in_file = key in self._in_file[kind]
                rest = sorted([*rest, Override(kind, key, record, seq, in_file, actor, now)],
                              key=lambda o: o.seq)  # fmt: skip
                await db.execute(
                    "INSERT INTO directory_overrides (kind, key, record, seq, in_file, updated_by,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE"
                    " SET record = excluded.record, in_file = excluded.in_file,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (kind, key, _json(record), seq, int(in_file), actor, stamp),
                )
            else:
                await db.execute(
                    "DELETE FROM directory_overrides WHERE kind = ? AND key = ?", (kind, key)
                )
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
            await db.execute(
                "INSERT INTO directory_log (kind, key, action, record, actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (kind, key, action, _json(record), actor, stamp),
            )
            await write_members(db, after.config.members)
            if then is not None:
                await then(db)
            return after

        self._state = await self.store.write(write)
        # The version is not taken as ours: another change may have landed between this
        # write and the bump, so the next refresh rebuilds once from what is stored.
        if self._redis is not None:
            try:
                await self._redis.incr(keys.DIRECTORY_VERSION)
            except REDIS_DOWN:
                log.warning(
                    "directory changed but Redis is unreachable: other processes "
                    "pick the change up when they restart"
                )


def _check_rights(
    actor: Actor, key: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """May `actor` change member `key` from `before` to `after` (None: absent)?"""
    if key == actor.id and (after is None or (before or {}).get("role") != after.get("role")):
        raise NotAllowed("id", N_("you cannot change your own role or remove yourself"))
    if actor.role != "admin" and any(r and r.get("role") == "admin" for r in (before, after)):
        raise NotAllowed("role", N_("only an admin can add, change or remove admins"))


def _check_member(
    config: PointConfig, record: dict[str, Any], current: Entry | None, actor: Actor
) -> None:
    key = record["id"]
    _check_rights(actor, key, current.record if current else None, record)
    for company in record.get("companies", []):
        paired = next((m for m in config.members if company in m.companies and m.id != key), None)
        if paired is not None:
            raise DirectoryError(
                "companies",
                N_("%(company)s is already paired with %(member)s"),
                company=company,
                member=paired.name,
            )


async def _check_member_removal(
    db: aiosqlite.Connection,
    config: PointConfig,
    key: str,
    current: Entry,
    actor: Actor,
    now: datetime,
) -> None:
    _check_rights(actor, key, current.record, None)
    if key in config.duty.rotation:
        raise DirectoryError(
            "id",
            N_("%(key)s is on the duty rotation: take them off it in the point config first"),
            key=key,
        )
    if key == config.duty.standing_head:
        raise DirectoryError(
            "id",
            N_("%(key)s is the standing head: name another in the point config first"),
            key=key,
        )
    count = await _open_cases(db, "assignee_id", key)
    if count:
        raise DirectoryError(
            "id",
            N_("%(key)s has %(count)d open case(s): reassign them first"),
            key=key,
            count=count,
        )
    covers = await _count(
        db,
        "SELECT count(*) FROM duty_changes WHERE member_id = ? AND kind = 'cover'"
        " AND removed_at IS NULL AND ends_at > ?",
        (key, to_utc_text(now)),
    )
    if covers:
        raise DirectoryError(
            "id", N_("%(key)s has duty overrides still to come: remove them first"), key=key
        )


async def _check_department_removal(
    db: aiosqlite.Connection, config: PointConfig, key: str
) -> None:
    users = [c.code for c in config.categories if c.department == key]
    if users:
        raise DirectoryError(
            "id",
            N_("categories %(codes)s refer to %(key)s: change them first"),
            codes=", ".join(users),
            key=key,
        )
    count = await _open_cases(db, "department_id", key)
    if count:
        raise DirectoryError(
            "id", N_("%(count)d open case(s) are referred to %(key)s"), key=key, count=count
        )
