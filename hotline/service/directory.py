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

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hotline.service.cases import to_utc_text
from hotline.service.config import PointConfig
from hotline.service.configfile import config_warnings, read_config_data
from hotline.service.i18n import N_
from hotline.service.overlay import (
    KINDS,
    Actor,
    Changed,
    DirectoryError,
    Entry,
    NotAllowed,
    Overlay,
    Override,
    State,
    check_member,
    check_rights,
)
from hotline.service.ports import Signals
from hotline.service.store import Store
from hotline.service.store.accounts import write_members, write_password
from hotline.service.store.cases import open_cases_in
from hotline.service.store.database import Conn
from hotline.service.store.directory import (
    drop_override,
    log_change,
    overrides_in,
    put_override,
)
from hotline.service.store.duty import future_covers_in

log = logging.getLogger(__name__)


Check = Callable[[State, Conn], Awaitable[None]]


class Directory:
    def __init__(self, base: dict[str, Any], source: str) -> None:
        """`base` is the parsed TOML of the config file; it is checked here, at once."""
        self.overlay = Overlay(base, source)
        self._state = self.overlay.build(())  # checks the file, at once
        for warning in config_warnings(self._state.config):
            log.warning("%s: %s", source, warning)
        self._store: Store | None = None
        self._signals: Signals | None = None
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

    async def open(self, store: Store, signals: Signals | None = None) -> None:
        """Load the console's edits and mirror the members into the store (in one write, so
        a change another process makes meanwhile is not undone)."""
        self._store, self._signals = store, signals
        version = await self._current_version()

        async def load(db: Conn) -> State:
            state = self.overlay.build(await overrides_in(db))
            await write_members(db, state.config.members)
            return state

        self._state = await store.write(load)
        self._version = version

    async def _current_version(self) -> int:
        if self._signals is None:
            return -1
        version = await self._signals.version("directory")
        return self._version if version is None else version  # unreadable: keep what we have

    async def refresh(self) -> bool:
        """Rebuild if any process changed the directory since; True when it did."""
        if await self._current_version() == self._version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        """Rebuild from the stored edits, whatever the version says."""
        version = await self._current_version()  # first: a change landing meanwhile bumps it
        self._state = self.overlay.build(await self.store.directory.overrides())
        self._version = version

    # -- reading ----------------------------------------------------------------------

    def entries(self, kind: str, state: State | None = None) -> list[Entry]:
        """Every entry of a kind: those in force in config order, then those removed or set
        aside in the console."""
        return self.overlay.entries(kind, state or self._state)

    def entry(self, kind: str, key: str, state: State | None = None) -> Entry | None:
        return next((e for e in self.entries(kind, state) if e.key == key), None)

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        return await self.store.directory.history(kind, key)

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

        async def check(before: State, db: Conn) -> None:
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
                check_member(before.config, record, current, actor)
                if not record.get("phone") and await future_covers_in(db, key, now):
                    # Overrides are refused for a member without one (DutyBook): so is
                    # taking it from one who holds overrides, current or to come.
                    raise DirectoryError(
                        "phone",
                        N_("%(key)s covers shifts (duty overrides still to come): a member on"
                           " duty needs a phone; remove the overrides first"),
                        key=key,
                    )  # fmt: skip
            elif kind == "categories":
                department = record.get("department")
                if department and before.config.department(department) is None:
                    raise DirectoryError(
                        "department", N_("unknown department %(id)s"), id=department
                    )

        async def then(db: Conn) -> None:
            if password_hash is not None:
                await write_password(db, key, password_hash, to_utc_text(now))

        action = "add" if new else "edit"
        await self._change(kind, key, record, action, actor.id, now, check, then)

    async def remove(
        self, kind: str, key: str, actor: Actor, now: datetime, *, seen: int | None = None
    ) -> None:
        async def check(before: State, db: Conn) -> None:
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
                count = await open_cases_in(db, "category", key)
                if count:
                    raise DirectoryError(
                        "code", N_("%(count)d open case(s) have this topic"), count=count
                    )

        async def then(db: Conn) -> None:
            if kind == "members":  # no way back in with the old password or sessions
                await write_password(db, key, None, to_utc_text(now))

        await self._change(kind, key, None, "remove", actor.id, now, check, then)

    async def revert(self, kind: str, key: str, actor: Actor, now: datetime) -> None:
        """Drop the console's edit of an entry the file has: the file's version holds again."""

        async def check(before: State, db: Conn) -> None:
            current = self.entry(kind, key, before)
            if current is None or current.override is None or not current.in_file:
                raise DirectoryError(
                    KINDS[kind], N_("%(key)s has no console edit to undo"), key=key
                )
            if kind == "members":
                after = next(e for e in self.overlay.base["members"] if e["id"] == key)
                check_rights(actor, key, current.record, after)

        await self._change(kind, key, None, "revert", actor.id, now, check)

    async def set_password(self, actor: Actor, key: str, password_hash: str, now: datetime) -> None:
        """Give member `key` a new password (which signs them out everywhere), logged."""

        async def write(db: Conn) -> None:
            before = self.overlay.build(await overrides_in(db))
            target = before.config.member(key)
            if target is None:
                raise DirectoryError("id", N_("there is no %(key)s to edit"), key=key)
            if key == actor.id:
                raise NotAllowed("password", N_("change your own password on the Password page"))
            if target.role == "admin" and actor.role != "admin":
                raise NotAllowed("role", N_("only an admin can add, change or remove admins"))
            await write_password(db, key, password_hash, to_utc_text(now))
            await log_change(db, "members", key, "password", None, actor.id, now)

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
        then: Callable[[Conn], Awaitable[None]] | None = None,
    ) -> None:
        """Store one change in one write: checked against the directory as stored at that
        moment (another process may have changed it), with the members mirrored and the
        change logged."""

        async def write(db: Conn) -> State:
            before = self.overlay.build(await overrides_in(db))
            await check(before, db)
            existing = next((o for o in before.overrides if (o.kind, o.key) == (kind, key)), None)
            rest = [o for o in before.overrides if o is not existing]
            if action != "revert":
                seq = existing.seq if existing else max((o.seq for o in rest), default=0) + 1
                in_file = key in self.overlay.in_file[kind]
                override = Override(kind, key, record, seq, in_file, actor, now)
                rest = sorted([*rest, override], key=lambda o: o.seq)
                await put_override(db, override)
            else:
                await drop_override(db, kind, key)
            after = self.overlay.build(rest)
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
            await log_change(db, kind, key, action, record, actor, now)
            await write_members(db, after.config.members)
            if then is not None:
                await then(db)
            return after

        self._state = await self.store.write(write)
        # The version is not taken as ours: another change may have landed between this
        # write and the bump, so the next refresh rebuilds once from what is stored.
        if self._signals is not None:
            await self._signals.bump("directory")


async def _check_member_removal(
    db: Conn,
    config: PointConfig,
    key: str,
    current: Entry,
    actor: Actor,
    now: datetime,
) -> None:
    check_rights(actor, key, current.record, None)
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
    count = await open_cases_in(db, "assignee_id", key)
    if count:
        raise DirectoryError(
            "id",
            N_("%(key)s has %(count)d open case(s): reassign them first"),
            key=key,
            count=count,
        )
    if await future_covers_in(db, key, now):
        raise DirectoryError(
            "id", N_("%(key)s has duty overrides still to come: remove them first"), key=key
        )


async def _check_department_removal(db: Conn, config: PointConfig, key: str) -> None:
    users = [c.code for c in config.categories if c.department == key]
    if users:
        raise DirectoryError(
            "id",
            N_("categories %(codes)s refer to %(key)s: change them first"),
            codes=", ".join(users),
            key=key,
        )
    count = await open_cases_in(db, "department_id", key)
    if count:
        raise DirectoryError(
            "id", N_("%(count)d open case(s) are referred to %(key)s"), key=key, count=count
        )
