"""The point's directory as layers: the config file's members, departments and categories,
with the console's per-entry overrides on top. Pure: no I/O (service/directory.py stores the
overrides and keeps every process up to date).

An override replaces one entry whole or removes it. `Overlay.build` applies them in order and
checks the result with `parse_config`; an override that does not fit is set aside whole,
with the reason, and the rest still apply.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hotline.service.config import ConfigError, PointConfig
from hotline.service.configfile import parse_config
from hotline.service.i18n import N_, Refusal

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
class State:
    """The file with a set of overrides applied."""

    data: dict[str, Any]
    config: PointConfig
    overrides: tuple[Override, ...]
    set_aside: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


# Why an edit is set aside when the file moved under it (catalog ids: shown translated).
GONE_FROM_FILE = N_("the config file no longer has this entry; save it again to keep it")
BACK_IN_FILE = N_("the config file has this entry again; remove it again to hide it")


def apply(
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


class Overlay:
    def __init__(self, base: dict[str, Any], source: str) -> None:
        """`base` is the parsed TOML of the config file, `source` its name; ConfigError when
        the file itself does not hold (before anything here reads its tables)."""
        parse_config(base, source)
        self.base = base
        self.source = source
        self.in_file = {
            kind: {e.get(key_field) for e in base.get(kind, []) if isinstance(e, dict)}
            for kind, key_field in KINDS.items()
        }

    def build(self, overrides: Sequence[Override]) -> State:
        """The file with `overrides` applied in order; an edit that does not fit is set aside
        whole (and logged), and the rest still apply."""
        aside: dict[tuple[str, str], tuple[str, ...]] = {}
        usable = []
        for o in overrides:
            in_file = o.key in self.in_file[o.kind]
            if o.record is not None and o.in_file and not in_file:
                aside[(o.kind, o.key)] = (GONE_FROM_FILE,)
            elif o.record is None and not o.in_file and in_file:
                aside[(o.kind, o.key)] = (BACK_IN_FILE,)
            else:
                usable.append(o)
        candidate = self.base
        for o in usable:
            candidate = apply(candidate, o.kind, o.key, o.record)
        try:  # the usual case: every edit fits
            config = parse_config(candidate, "console edits")
        except ConfigError:
            candidate, config = self.base, parse_config(self.base, self.source)
            for o in usable:  # one at a time, keeping those that fit
                attempt = apply(candidate, o.kind, o.key, o.record)
                try:
                    config = parse_config(attempt, "console edits")
                except ConfigError as exc:
                    aside[(o.kind, o.key)] = tuple(exc.problems)
                    continue
                candidate = attempt
        for (kind, key), problems in aside.items():
            log.warning("console edit to %s %r set aside: %s", kind, key, "; ".join(problems))
        return State(candidate, config, tuple(overrides), aside)

    def entries(self, kind: str, state: State) -> list[Entry]:
        """Every entry of a kind in `state`: those in force in config order, then those
        removed or set aside in the console."""
        key_field, in_file = KINDS[kind], self.in_file[kind]
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


def check_rights(
    actor: Actor, key: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """May `actor` change member `key` from `before` to `after` (None: absent)?"""
    if key == actor.id and (after is None or (before or {}).get("role") != after.get("role")):
        raise NotAllowed("id", N_("you cannot change your own role or remove yourself"))
    if actor.role != "admin" and any(r and r.get("role") == "admin" for r in (before, after)):
        raise NotAllowed("role", N_("only an admin can add, change or remove admins"))


def check_member(
    config: PointConfig, record: dict[str, Any], current: Entry | None, actor: Actor
) -> None:
    key = record["id"]
    check_rights(actor, key, current.record if current else None, record)
    for company in record.get("companies", []):
        paired = next((m for m in config.members if company in m.companies and m.id != key), None)
        if paired is not None:
            raise DirectoryError(
                "companies",
                N_("%(company)s is already paired with %(member)s"),
                company=company,
                member=paired.name,
            )
