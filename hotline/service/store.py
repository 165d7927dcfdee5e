"""The SQLite store: one writer behind a lock, a separate reader, versioned migrations."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from hotline.service.cases import FINISHED, Intake, Status, from_utc_text, to_utc_text
from hotline.service.config import Member, PointConfig

T = TypeVar("T")


class CodeConflict(Exception):
    """A case code is already taken by another intake: never overwrite, never merge."""


class CaseNotStored(Exception):
    """A follow-up for a case the router has not stored yet (it is further up the stream)."""


@dataclass(frozen=True)
class Message:
    at: datetime
    direction: str
    channel: str
    body: str
    media: list[tuple[str, str]]


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    status: str
    actor: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class Case:
    id: int
    code: str
    intake_key: str
    channel: str
    status: str
    text: str
    language: str
    category: str | None
    company: str | None
    submitter_name: str | None
    submitter_phone: str | None
    source_tag: str | None
    assignee_id: str | None
    assignee_name: str | None
    received_at: datetime
    updated_at: datetime
    rating: int | None = None
    rating_requested_at: datetime | None = None
    department_id: str | None = None
    referral_due: datetime | None = None
    presidium: bool = False
    outcome: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    held_until: datetime | None = None
    urgent: bool = False
    escalations: int = 0
    waiting_since: datetime | None = None
    taken_by: str | None = None

    @property
    def rating_pending(self) -> bool:
        """Resolved, the submitter was asked for a rating, and none has come yet."""
        return (
            self.status == "resolved"
            and self.rating is None
            and self.rating_requested_at is not None
        )


_CASE_SELECT = (
    "SELECT c.*, m.name AS assignee_name FROM cases c"
    " LEFT JOIN members m ON m.id = c.assignee_id WHERE "
)


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("hotline.service").joinpath("migrations")
    scripts = sorted(
        (int(item.name.split("_", 1)[0]), item.read_text(encoding="utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".sql")
    )
    versions = [v for v, _ in scripts]
    if versions != list(range(1, len(scripts) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return scripts


async def write_members(db: aiosqlite.Connection, members: Iterable[Member]) -> None:
    """Mirror `members` into the members table, inside the caller's transaction. Members no
    longer listed stay (old cases name them), marked inactive: they cannot sign in."""
    await db.execute("UPDATE members SET active = 0")
    await db.executemany(
        "INSERT INTO members (id, name, phone, role, active) VALUES (?, ?, ?, ?, 1)"
        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, phone = excluded.phone,"
        " role = excluded.role, active = 1",
        [(m.id, m.name, m.phone, m.role) for m in members],
    )


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Store:
    """All writes go through `write` (one connection, a lock, BEGIN IMMEDIATE)."""

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        writer = await _connect(path)
        try:
            await writer.execute("PRAGMA journal_mode = WAL")
            await writer.execute("PRAGMA synchronous = NORMAL")
            await _migrate(writer)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def write(self, fn: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                result = await fn(self._writer)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
            return result

    @asynccontextmanager
    async def _read(
        self, sql: str, params: tuple[Any, ...] = ()
    ) -> AsyncIterator[aiosqlite.Cursor]:
        async with self._reader.execute(sql, params) as cursor:
            yield cursor

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query, on the reader connection."""
        async with self._read(sql, params) as cur:
            return list(await cur.fetchall())

    async def sync_members(self, config: PointConfig) -> None:
        """Mirror the config's members; members no longer listed stay, marked inactive."""
        await self.write(lambda db: write_members(db, config.members))

    async def create_case(
        self,
        code: str,
        intake: Intake,
        assignee_id: str | None,
        reason: str,
        now: datetime,
        due: datetime | None = None,
        copy: tuple[str, ...] = (),
    ) -> tuple[int, bool]:
        """Store a routed intake once. Returns (case id, created); the same intake key again
        returns the existing case untouched."""

        async def apply(db: aiosqlite.Connection) -> tuple[int, bool]:
            async with db.execute(
                "SELECT id, code FROM cases WHERE intake_key = ?", (intake.key,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None:
                return int(row["id"]), False
            status = Status.ASSIGNED if assignee_id else Status.RECEIVED
            try:
                cur = await db.execute(
                    "INSERT INTO cases (code, intake_key, channel, status, text, language,"
                    " category, company, submitter_name, submitter_phone, source_tag, assignee_id,"
                    " received_at, created_at, updated_at, held_until, urgent, waiting_since,"
                    " taken_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        code,
                        intake.key,
                        intake.channel,
                        status,
                        intake.text,
                        intake.language,
                        intake.category,
                        intake.company,
                        intake.name,
                        intake.phone,
                        intake.source_tag,
                        assignee_id,
                        to_utc_text(intake.received_at),
                        to_utc_text(now),
                        to_utc_text(now),
                        to_utc_text(due) if due else None,
                        int(intake.urgent),
                        to_utc_text(max(due or intake.received_at, intake.received_at)),
                        intake.taken_by,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise CodeConflict(f"case code {code} is taken by another intake") from exc
            case_id = cur.lastrowid
            assert case_id is not None
            received = json.dumps({"taken_by": intake.taken_by} if intake.taken_by else {})
            events = [
                (
                    case_id,
                    to_utc_text(intake.received_at),
                    "received",
                    Status.RECEIVED,
                    intake.taken_by,
                    received,
                )
            ]
            if assignee_id:
                assigned: dict[str, Any] = {"to": assignee_id, "reason": reason}
                if due is not None:
                    assigned["due"] = to_utc_text(due)
                if copy:
                    assigned["copy"] = list(copy)
                detail = json.dumps(assigned)
                events.append(
                    (case_id, to_utc_text(now), "assigned", Status.ASSIGNED, None, detail)
                )
            await db.executemany(
                "INSERT INTO events (case_id, at, kind, status, actor, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                events,
            )
            if intake.channel == "sms":
                await _insert_message(db, case_id, intake)
            return case_id, True

        return await self.write(apply)

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]:
        """Add a follow-up text to a case, once per intake key. Returns (case, added)."""

        async def apply(db: aiosqlite.Connection) -> bool:
            async with db.execute("SELECT id, status FROM cases WHERE code = ?", (code,)) as cur:
                row = await cur.fetchone()
            if row is None:
                raise CaseNotStored(f"case {code} is not stored yet")
            if not await _insert_message(db, row["id"], intake):
                return False
            detail = json.dumps({"channel": intake.channel, "media": len(intake.media)})
            await db.execute(
                "INSERT INTO events (case_id, at, kind, status, actor, detail)"
                " VALUES (?, ?, 'message', ?, NULL, ?)",
                (row["id"], to_utc_text(intake.received_at), row["status"], detail),
            )
            await db.execute(
                "UPDATE cases SET updated_at = ? WHERE id = ?", (to_utc_text(now), row["id"])
            )
            return True

        added = await self.write(apply)
        case = await self.case_by_code(code)
        assert case is not None
        return case, added

    async def messages(self, case_id: int) -> list[Message]:
        async with self._read(
            "SELECT at, direction, channel, body, media FROM messages WHERE case_id = ?"
            " ORDER BY id",
            (case_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            Message(
                from_utc_text(r["at"]),
                r["direction"],
                r["channel"],
                r["body"],
                [(url, kind) for url, kind in json.loads(r["media"])],
            )
            for r in rows
        ]

    async def open_case_from(self, phone: str, channel: str, since: datetime) -> Case | None:
        """The newest unfinished case this number opened on this channel since `since`."""
        placeholders = ", ".join("?" for _ in FINISHED)
        return await self._one_case(
            f"c.submitter_phone = ? AND c.channel = ? AND c.received_at >= ?"
            f" AND c.status NOT IN ({placeholders}) ORDER BY c.received_at DESC LIMIT 1",
            (phone, channel, to_utc_text(since), *sorted(FINISHED)),
        )

    async def latest_case_from(self, phone: str) -> Case | None:
        return await self._one_case(
            "c.submitter_phone = ? ORDER BY c.received_at DESC LIMIT 1", (phone,)
        )

    async def rating_pending_for(self, phone: str) -> Case | None:
        """The newest case that asked this number for a rating and has not had one."""
        return await self._one_case(
            "c.submitter_phone = ? AND c.rating_requested_at IS NOT NULL AND c.rating IS NULL"
            " ORDER BY c.rating_requested_at DESC LIMIT 1",
            (phone,),
        )

    async def cases_where(self, where: str, params: tuple[Any, ...] = ()) -> list[Case]:
        """Cases by a WHERE clause written in this package (never from input)."""
        return [case_from_row(r) for r in await self.fetch(_CASE_SELECT + where, params)]

    async def case_by_code(self, code: str) -> Case | None:
        return await self._one_case("c.code = ?", (code,))

    async def _one_case(self, where: str, params: tuple[Any, ...]) -> Case | None:
        """One case by a WHERE clause written in this module (never from input)."""
        sql = _CASE_SELECT + where
        async with self._read(sql, params) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return case_from_row(row)

    async def events(self, case_id: int) -> list[Event]:
        async with self._read(
            "SELECT at, kind, status, actor, detail FROM events WHERE case_id = ? ORDER BY id",
            (case_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            Event(
                from_utc_text(r["at"]), r["kind"], r["status"], r["actor"], json.loads(r["detail"])
            )
            for r in rows
        ]

    async def count_cases(self) -> int:
        async with self._read("SELECT count(*) FROM cases") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def code_keys(self) -> list[tuple[str, str, str]]:
        """(code, intake key, received_at) of every case: to rebuild Redis's reservations."""
        async with self._read("SELECT code, intake_key, received_at FROM cases") as cur:
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


def _when(value: str | None) -> datetime | None:
    return from_utc_text(value) if value else None


def case_from_row(row: sqlite3.Row) -> Case:
    return Case(
        id=row["id"],
        code=row["code"],
        intake_key=row["intake_key"],
        channel=row["channel"],
        status=row["status"],
        text=row["text"],
        language=row["language"],
        category=row["category"],
        company=row["company"],
        submitter_name=row["submitter_name"],
        submitter_phone=row["submitter_phone"],
        source_tag=row["source_tag"],
        assignee_id=row["assignee_id"],
        assignee_name=row["assignee_name"],
        received_at=from_utc_text(row["received_at"]),
        updated_at=from_utc_text(row["updated_at"]),
        rating=row["rating"],
        rating_requested_at=_when(row["rating_requested_at"]),
        department_id=row["department_id"],
        referral_due=_when(row["referral_due"]),
        presidium=bool(row["presidium"]),
        outcome=row["outcome"],
        first_response_at=_when(row["first_response_at"]),
        resolved_at=_when(row["resolved_at"]),
        held_until=_when(row["held_until"]),
        urgent=bool(row["urgent"]),
        escalations=row["escalations"],
        waiting_since=_when(row["waiting_since"]),
        taken_by=row["taken_by"],
    )


async def _insert_message(db: aiosqlite.Connection, case_id: int, intake: Intake) -> bool:
    """An inbound message, once per intake key (e.g. Twilio's MessageSid)."""
    cur = await db.execute(
        "INSERT INTO messages (case_id, direction, channel, external_id, body, media, at)"
        " VALUES (?, 'in', ?, ?, ?, ?, ?) ON CONFLICT (external_id) DO NOTHING",
        (
            case_id,
            intake.channel,
            intake.key,
            intake.text,
            json.dumps([list(m) for m in intake.media]),
            to_utc_text(intake.received_at),
        ),
    )
    return cur.rowcount == 1


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    scripts = _migrations()
    if current > len(scripts):
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this program knows"
            f" ({len(scripts)}): upgrade the program"
        )
    for version, sql in scripts[current:]:
        # executescript commits on its own; the version bump is inside the same script so a
        # crash leaves either the old or the new schema, never a half.
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
