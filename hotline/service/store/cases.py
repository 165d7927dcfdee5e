"""Cases, their events and messages: every query on them. Writes that are conditional on the
state the caller saw (status, assignee, escalation count) say so in their result, so two
processes acting at once make one change, never two."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from hotline.service.cases import (
    FINISHED,
    Case,
    Event,
    Intake,
    Message,
    Status,
    from_utc_text,
    to_utc_text,
)
from hotline.service.store.database import (
    Conn,
    Database,
    IntegrityError,
    Params,
    Row,
    in_list,
)

SELECT = (
    "SELECT c.*, m.name AS assignee_name FROM cases c LEFT JOIN members m ON m.id = c.assignee_id"
)
_FINISHED_IN, _FINISHED = in_list("finished", sorted(FINISHED))
_NOT_FINISHED = f"c.status NOT IN {_FINISHED_IN}"


class CodeConflict(Exception):
    """A case code is already taken by another intake: never overwrite, never merge."""


class CaseNotStored(Exception):
    """A follow-up for a case the router has not stored yet (it is further up the stream)."""


class CaseRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading -------------------------------------------------------------------------

    async def _one(self, where: str, params: Params) -> Case | None:
        """One case by a WHERE clause written in this module (never from input)."""
        row = await self.db.fetch_one(f"{SELECT} WHERE {where}", params)
        return case_from_row(row) if row is not None else None

    async def _many(self, where: str, params: Params = None) -> list[Case]:
        rows = await self.db.fetch(f"{SELECT} WHERE {where}", params)
        return [case_from_row(r) for r in rows]

    async def by_code(self, code: str) -> Case | None:
        return await self._one("c.code = :code", {"code": code})

    async def latest_from(self, phone: str) -> Case | None:
        return await self._one(
            "c.submitter_phone = :phone ORDER BY c.received_at DESC LIMIT 1", {"phone": phone}
        )

    async def rating_pending_for(self, phone: str) -> Case | None:
        """The newest case that asked this number for a rating and has not had one."""
        return await self._one(
            "c.submitter_phone = :phone AND c.rating_requested_at IS NOT NULL"
            " AND c.rating IS NULL ORDER BY c.rating_requested_at DESC LIMIT 1",
            {"phone": phone},
        )

    async def with_status(self, statuses: Iterable[str], assignee: str | None = None) -> list[Case]:
        marks, params = in_list("status", statuses)
        where = f"c.status IN {marks}"
        if assignee is None:
            return await self._many(where, params)
        return await self._many(
            where + " AND c.assignee_id = :assignee", params | {"assignee": assignee}
        )

    async def referrals_overdue(self, now: datetime) -> list[Case]:
        return await self._many(
            "c.status = 'referred' AND c.referral_due < :now", {"now": to_utc_text(now)}
        )

    async def unrated_since(self, before: datetime) -> list[Case]:
        """Resolved cases whose rating was asked for before `before` and never came."""
        return await self._many(
            "c.status = 'resolved' AND c.rating IS NULL AND c.rating_requested_at IS NOT NULL"
            " AND c.rating_requested_at < :before",
            {"before": to_utc_text(before)},
        )

    async def events(self, case_id: int) -> list[Event]:
        rows = await self.db.fetch(
            "SELECT at, kind, status, actor, detail FROM events WHERE case_id = :id ORDER BY id",
            {"id": case_id},
        )
        return [
            Event(
                from_utc_text(r["at"]), r["kind"], r["status"], r["actor"], json.loads(r["detail"])
            )
            for r in rows
        ]

    async def messages(self, case_id: int) -> list[Message]:
        rows = await self.db.fetch(
            "SELECT at, direction, channel, body, media FROM messages WHERE case_id = :id"
            " ORDER BY id",
            {"id": case_id},
        )
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

    async def count(self) -> int:
        return int(await self.db.scalar("SELECT count(*) FROM cases") or 0)

    async def open_by_status(self) -> dict[str, int]:
        """How many unfinished cases there are in each status (for /metrics)."""
        rows = await self.db.fetch(
            f"SELECT c.status, count(*) AS n FROM cases c WHERE {_NOT_FINISHED} GROUP BY c.status",  # noqa: S608 - ours
            _FINISHED,
        )
        return {r["status"]: int(r["n"]) for r in rows}

    async def overdue_referrals(self, now: datetime) -> int:
        return int(
            await self.db.scalar(
                "SELECT count(*) FROM cases WHERE status = 'referred' AND referral_due < :now",
                {"now": to_utc_text(now)},
            )
            or 0
        )

    async def code_keys(self) -> list[tuple[str, str, str]]:
        """(code, intake key, received_at) of every case: to rebuild Redis's reservations."""
        rows = await self.db.fetch("SELECT code, intake_key, received_at FROM cases")
        return [(r["code"], r["intake_key"], r["received_at"]) for r in rows]

    # -- writing -------------------------------------------------------------------------

    async def create(
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
        returns the existing case untouched. The unique intake key decides, not a look first:
        two workers storing the same intake at once make one case."""

        async def apply(db: Conn) -> tuple[int, bool]:
            status = Status.ASSIGNED if assignee_id else Status.RECEIVED
            try:
                case_id = await db.scalar(
                    "INSERT INTO cases (code, intake_key, channel, status, text, language,"
                    " category, company, submitter_name, submitter_phone, source_tag, assignee_id,"
                    " received_at, created_at, updated_at, held_until, urgent, waiting_since,"
                    " taken_by) VALUES (:code, :key, :channel, :status, :text, :language,"
                    " :category, :company, :name, :phone, :source_tag, :assignee, :received,"
                    " :now, :now, :held, :urgent, :waiting, :taken_by)"
                    " ON CONFLICT (intake_key) DO NOTHING RETURNING id",
                    {
                        "code": code,
                        "key": intake.key,
                        "channel": intake.channel,
                        "status": str(status),
                        "text": intake.text,
                        "language": intake.language,
                        "category": intake.category,
                        "company": intake.company,
                        "name": intake.name,
                        "phone": intake.phone,
                        "source_tag": intake.source_tag,
                        "assignee": assignee_id,
                        "received": to_utc_text(intake.received_at),
                        "now": to_utc_text(now),
                        "held": to_utc_text(due) if due else None,
                        "urgent": int(intake.urgent),
                        "waiting": to_utc_text(max(due or intake.received_at, intake.received_at)),
                        "taken_by": intake.taken_by,
                    },
                )
            except IntegrityError as exc:
                if not _violates(exc, "cases", "code"):  # any other is a bug, not a conflict
                    raise
                raise CodeConflict(f"case code {code} is taken by another intake") from exc
            if case_id is None:
                existing = await db.scalar(
                    "SELECT id FROM cases WHERE intake_key = :key", {"key": intake.key}
                )
                return int(existing), False
            received = {"taken_by": intake.taken_by} if intake.taken_by else {}
            await add_event(db, case_id, intake.received_at, "received", Status.RECEIVED,
                            intake.taken_by, received)  # fmt: skip
            if assignee_id:
                assigned: dict[str, Any] = {"to": assignee_id, "reason": reason}
                if due is not None:
                    assigned["due"] = to_utc_text(due)
                if copy:
                    assigned["copy"] = list(copy)
                await add_event(db, case_id, now, "assigned", Status.ASSIGNED, None, assigned)
            if intake.channel == "sms":
                await _insert_message(db, case_id, intake)
            return case_id, True

        return await self.db.write(apply)

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]:
        """Add a follow-up text to a case, once per intake key. Returns (case, added)."""

        async def apply(db: Conn) -> bool:
            row = await db.row("SELECT id, status FROM cases WHERE code = :code", {"code": code})
            if row is None:
                raise CaseNotStored(f"case {code} is not stored yet")
            if not await _insert_message(db, row["id"], intake):
                return False
            detail = {"channel": intake.channel, "media": len(intake.media)}
            await add_event(db, row["id"], intake.received_at, "message", row["status"], None,
                            detail)  # fmt: skip
            await db.execute(
                "UPDATE cases SET updated_at = :now WHERE id = :id",
                {"now": to_utc_text(now), "id": row["id"]},
            )
            return True

        added = await self.db.write(apply)
        case = await self.by_code(code)
        assert case is not None
        return case, added

    async def transition(
        self,
        case: Case,
        columns: dict[str, Any],
        event: tuple[str, str, str | None, dict[str, Any]],
        now: datetime,
        *,
        when: dict[str, Any] | None = None,
    ) -> int | None:
        """Update a case and record its event in one write, only if the case still has the
        status (and the `when` column values) the caller saw. `event` is (kind, status,
        actor, detail). Returns the event's id, or None when the case had moved on."""
        expected = {"status": str(case.status)} | (when or {})
        sets = ", ".join(f"{name} = :set_{name}" for name in columns)
        # IS NOT DISTINCT FROM: equal, with NULL equal to NULL (SQLite 3.39+, PostgreSQL).
        checks = " AND ".join(f"{name} IS NOT DISTINCT FROM :was_{name}" for name in expected)
        params = (
            {f"set_{name}": _value(v) for name, v in columns.items()}
            | {f"was_{name}": _value(v) for name, v in expected.items()}
            | {"id": case.id}
        )
        kind, status, actor, detail = event

        async def write(db: Conn) -> int | None:
            changed = await db.execute(
                f"UPDATE cases SET {sets} WHERE id = :id AND {checks}",  # noqa: S608 - names are ours
                params,
            )
            if changed != 1:
                return None
            return await add_event(db, case.id, now, kind, status, actor, detail)

        return await self.db.write(write)

    async def add_reply(
        self,
        case_id: int,
        channel: str,
        body: str,
        outbox_id: int | None,
        actor: str,
        now: datetime,
    ) -> None:
        """An outgoing message on a case (it shows on /track)."""

        async def write(db: Conn) -> None:
            await db.execute(
                "INSERT INTO messages (case_id, direction, channel, body, at, outbox_id, actor)"
                " VALUES (:case_id, 'out', :channel, :body, :at, :outbox_id, :actor)",
                {
                    "case_id": case_id,
                    "channel": channel,
                    "body": body,
                    "at": to_utc_text(now),
                    "outbox_id": outbox_id,
                    "actor": actor,
                },
            )

        await self.db.write(write)


async def add_event(
    db: Conn,
    case_id: int,
    at: datetime,
    kind: str,
    status: str,
    actor: str | None,
    detail: dict[str, Any],
) -> int:
    """Append to a case's event log, inside the caller's write."""
    event_id = await db.scalar(
        "INSERT INTO events (case_id, at, kind, status, actor, detail)"
        " VALUES (:case_id, :at, :kind, :status, :actor, :detail) RETURNING id",
        {
            "case_id": case_id,
            "at": to_utc_text(at),
            "kind": kind,
            "status": str(status),
            "actor": actor,
            "detail": json.dumps(detail),
        },
    )
    return int(event_id)


async def open_cases_in(db: Conn, column: str, key: str) -> int:
    """How many unfinished cases have `column` = key (a member, department or topic)."""
    if column not in ("assignee_id", "department_id", "category"):
        raise ValueError(f"not a case column to count by: {column}")
    return int(
        await db.scalar(
            f"SELECT count(*) FROM cases c WHERE c.{column} = :key AND {_NOT_FINISHED}",  # noqa: S608 - names are ours
            {"key": key, **_FINISHED},
        )
    )


async def _insert_message(db: Conn, case_id: int, intake: Intake) -> bool:
    """An inbound message, once per intake key (e.g. Twilio's MessageSid)."""
    added = await db.scalar(
        "INSERT INTO messages (case_id, direction, channel, external_id, body, media, at)"
        " VALUES (:case_id, 'in', :channel, :key, :body, :media, :at)"
        " ON CONFLICT (external_id) DO NOTHING RETURNING id",
        {
            "case_id": case_id,
            "channel": intake.channel,
            "key": intake.key,
            "body": intake.text,
            "media": json.dumps([list(m) for m in intake.media]),
            "at": to_utc_text(intake.received_at),
        },
    )
    return added is not None


def _value(value: Any) -> Any:
    """A column value as stored: times as UTC text, flags as 0/1, statuses as text."""
    if isinstance(value, datetime):
        return to_utc_text(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def _violates(exc: Exception, table: str, column: str) -> bool:
    """Whether a unique violation is on table.column (SQLite names the column, PostgreSQL
    the constraint, which `schema.py` names table_column_key on both)."""
    message = str(getattr(exc, "orig", exc))
    return f"{table}.{column}" in message or f"{table}_{column}_key" in message


def _when(value: str | None) -> datetime | None:
    return from_utc_text(value) if value else None


def case_from_row(row: Row) -> Case:
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
