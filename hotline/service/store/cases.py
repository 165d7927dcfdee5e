"""Cases, their events and messages: every query on them. Writes that are conditional on the
state the caller saw (status, assignee, escalation count) say so in their result, so two
processes acting at once make one change, never two."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline.service.cases import (
    FINISHED,
    Case,
    Event,
    Intake,
    Message,
    Referral,
    Status,
    from_utc_text,
    to_utc_text,
)
from hotline.service.store import schema, webhooks
from hotline.service.store.database import (
    Conn,
    Database,
    Params,
    Row,
    in_list,
)
from hotline.service.store.outbox import UNDELIVERED, Draft, add_drafts_in, add_texts_in
from hotline.service.store.reports import overdue_sql
from hotline.service.workflow import PUBLIC_EVENTS, REFERRAL_ANSWERED, REFERRAL_ENDED


def select_cases(hint: str = "") -> str:
    """Cases `c` with their assignee's name; `hint` follows the table (SQLite's INDEXED BY)."""
    return (
        f"SELECT c.*, m.name AS assignee_name FROM cases c{hint}"  # noqa: S608 - hints are ours
        " LEFT JOIN members m ON m.id = c.assignee_id"
    )


SELECT = select_cases()
_FINISHED_IN, _FINISHED = in_list("finished", sorted(FINISHED))
_NOT_FINISHED = f"c.status NOT IN {_FINISHED_IN}"


@dataclass(frozen=True)
class OutgoingReply:
    """A member's reply to the submitter: `text` shows on /track, `sms` goes to `phone`."""

    text: str
    actor: str
    phone: str | None
    sms: str


@dataclass(frozen=True)
class Undue:
    """A case stored without its due times: what computing them needs."""

    id: int
    category: str | None
    received_at: datetime
    held_until: datetime | None


class CodeConflict(Exception):
    """A case code is already taken by another intake: never overwrite, never merge."""


class CaseNotStored(Exception):
    """A follow-up for a case the router has not stored yet (it is further up the stream)."""


@dataclass(frozen=True)
class NewCase:
    """A routed intake to store: its code, who it goes to and why, and the texts it sends."""

    code: str
    intake: Intake
    assignee_id: str | None
    reason: str
    due: datetime | None = None  # when handling starts, when held for the next shift
    copy: tuple[str, ...] = ()  # members told about it as well
    drafts: tuple[Draft, ...] = ()
    # Its first response and resolution due (service/caselists.due_times); None: filled in
    # later by fill_due_times.
    targets: tuple[datetime, datetime] | None = None


@dataclass(frozen=True)
class Stored:
    """What became of a NewCase: created now, stored before (by its intake key), or
    refused (case_id None: its code belongs to another intake)."""

    case_id: int | None
    created: bool
    code: str | None = None  # the stored case's code: another one when stored before
    offered: bool = False  # its first events await partners' webhooks


# A reply shown on the public page (tracking.is_public_reply): one not texted (the submitter
# left no number), or whose text never reached them (opted out, failed, no provider).
_PUBLIC_REPLY = (
    "(m.direction = 'out' AND (m.channel <> 'sms' OR EXISTS (SELECT 1 FROM outbox o"  # noqa: S608 - ours
    f" WHERE o.id = m.outbox_id AND o.status IN {tuple(UNDELIVERED)!r})))"
)
# Asked for a rating and none given since (one from an earlier resolution may stand).
_UNRATED = "(c.rating IS NULL OR c.rated_at IS NULL OR c.rated_at <= c.rating_requested_at)"
_CASE_COLUMNS = (
    "code", "intake_key", "channel", "status", "text", "language", "category", "company",
    "submitter_name", "submitter_phone", "source_tag", "assignee_id", "received_at",
    "created_at", "updated_at", "held_until", "urgent", "waiting_since", "taken_by",
    "first_response_due", "resolution_due", "reception_id", "address", "latitude", "longitude",
)  # fmt: skip
# Every column but the id: what load_history writes.
_HISTORY_DEFAULTS: dict[str, Any] = dict.fromkeys(_CASE_COLUMNS) | dict.fromkeys(
    ("rating", "rating_requested_at", "rated_at", "department_id", "referral_due",
     "referral_answered_at", "closed_at", "outcome", "first_response_at", "resolved_at",
     "escalated_at")
) | {"presidium": 0, "reopens": 0, "urgent": 0, "escalations": 0}  # fmt: skip
_INSERT_HISTORY = "INSERT INTO cases ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(  # noqa: S608 - names are ours
    ", ".join(_HISTORY_DEFAULTS), ", ".join(":" + c for c in _HISTORY_DEFAULTS)
)
_INSERT_EVENT = (
    "INSERT INTO events (case_id, at, kind, status, actor, detail)"
    " VALUES (:case_id, :at, :kind, :status, :actor, :detail)"
)
# A case loaded without a `refer` event in its log: the one referral its columns tell (the
# referral's start is not stored there: its first response, else its receipt).
_REFERRALS_FROM_COLUMNS = (
    "INSERT INTO referrals (case_id, received_at, department_id, referred_at, due,"
    " answered_at, ended_at) SELECT c.id, c.received_at, c.department_id,"
    " coalesce(c.first_response_at, c.received_at),"
    " coalesce(c.referral_due, c.updated_at), c.referral_answered_at,"
    " CASE WHEN c.referral_answered_at IS NULL AND c.status <> 'referred'"
    " THEN c.updated_at END FROM cases c WHERE c.id > :after AND c.department_id IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM referrals r WHERE r.case_id = c.id)"
)
# A case loaded rated without a `rated` event in its log: the one rating its columns tell,
# credited to its member.
_RATINGS_FROM_COLUMNS = (
    "INSERT INTO ratings (case_id, received_at, member_id, rating, rated_at)"
    " SELECT c.id, c.received_at, c.assignee_id, c.rating, coalesce(c.rated_at, c.updated_at)"
    " FROM cases c WHERE c.id > :after AND c.rating IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM ratings g WHERE g.case_id = c.id)"
)
# The events after which a case is with the member their detail's "to" names.
_HANDED = ("assigned", "reassign", "handoff")
_INSERT_MESSAGE = (
    "INSERT INTO messages (case_id, direction, channel, external_id, body, media, at)"
    " VALUES (:case_id, :direction, :channel, :external_id, :body, :media, :at)"
    " ON CONFLICT (external_id) DO NOTHING"
)


def _case_row(new: NewCase, now: str) -> dict[str, Any]:
    intake, due = new.intake, new.due
    return {
        "code": new.code,
        "intake_key": intake.key,
        "channel": intake.channel,
        "status": str(Status.ASSIGNED if new.assignee_id else Status.RECEIVED),
        "text": intake.text,
        "language": intake.language,
        "category": intake.category,
        "company": intake.company,
        "submitter_name": intake.name,
        "submitter_phone": intake.phone,
        "source_tag": intake.source_tag,
        "assignee_id": new.assignee_id,
        "received_at": to_utc_text(intake.received_at),
        "created_at": now,
        "updated_at": now,
        "held_until": to_utc_text(due) if due else None,
        "urgent": int(intake.urgent),
        "waiting_since": to_utc_text(max(due or intake.received_at, intake.received_at)),
        "taken_by": intake.taken_by,
        "first_response_due": to_utc_text(new.targets[0]) if new.targets else None,
        "resolution_due": to_utc_text(new.targets[1]) if new.targets else None,
        "reception_id": intake.reception_id,
        "address": intake.address,
        "latitude": intake.latitude,
        "longitude": intake.longitude,
    }


def _event_row(
    case_id: int, at: datetime, kind: str, status: str, actor: str | None, detail: dict[str, Any]
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "at": to_utc_text(at),
        "kind": kind,
        "status": str(status),
        "actor": actor,
        "detail": json.dumps(detail),
    }


def _first_events(case_id: int, new: NewCase, now: datetime) -> list[dict[str, Any]]:
    """A new case's events: received, and assigned when it went to someone."""
    intake = new.intake
    received = {"taken_by": intake.taken_by} if intake.taken_by else {}
    events = [
        _event_row(case_id, intake.received_at, "received", Status.RECEIVED, intake.taken_by,
                   received)
    ]  # fmt: skip
    if new.assignee_id:
        assigned: dict[str, Any] = {"to": new.assignee_id, "reason": new.reason}
        if new.due is not None:
            assigned["due"] = to_utc_text(new.due)
        if new.copy:
            assigned["copy"] = list(new.copy)
        events.append(_event_row(case_id, now, "assigned", Status.ASSIGNED, None, assigned))
    return events


def _by_key(rows: Iterable[Row]) -> dict[str, tuple[int, str]]:
    """Cases' (id, code) by intake key, from rows of id, code, intake_key."""
    return {r["intake_key"]: (int(r["id"]), r["code"]) for r in rows}


def _message_row(case_id: int, intake: Intake) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "direction": "in",
        "channel": intake.channel,
        "external_id": intake.key,
        "body": intake.text,
        "media": json.dumps([list(m) for m in intake.media]),
        "at": to_utc_text(intake.received_at),
    }


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
            f"c.submitter_phone = :phone AND c.rating_requested_at IS NOT NULL AND {_UNRATED}"
            " ORDER BY c.rating_requested_at DESC LIMIT 1",
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

    async def deadlines(
        self, statuses: Iterable[str], assignee: str, now: datetime, near: datetime
    ) -> dict[str, int]:
        """A member's cases in `statuses`: how many, how many past a deadline at `now`, and
        how many not past one but past one by `near`; counted in the database (a member on
        duty at a busy point holds thousands), from the stored due times as the overdue view
        counts them. A case stored without its due times (by a worker from before them)
        counts as neither until `fill_due_times` gives it them, at the timed work's next
        turn."""
        marks, params = in_list("status", statuses)
        late = overdue_sql(params, to_utc_text(now))
        soon = overdue_sql(params, to_utc_text(near), "near_now")
        params["assignee"] = assignee
        row = await self.db.fetch_one(
            f"SELECT count(*) AS open, coalesce(sum(CASE WHEN {late} THEN 1 ELSE 0 END), 0)"  # noqa: S608 - ours
            f" AS late, coalesce(sum(CASE WHEN {late} THEN 0 WHEN {soon} THEN 1 ELSE 0 END), 0)"
            f" AS near FROM cases c WHERE c.status IN {marks} AND c.assignee_id = :assignee",
            params,
        )
        assert row is not None
        return {"open": int(row["open"]), "near": int(row["near"]), "late": int(row["late"])}

    async def referrals_overdue(self, now: datetime) -> list[Case]:
        return await self._many(
            "c.status = 'referred' AND c.referral_due < :now", {"now": to_utc_text(now)}
        )

    async def unrated_since(self, before: datetime) -> list[Case]:
        """Resolved cases whose rating was asked for before `before` and never came."""
        return await self._many(
            f"c.status = 'resolved' AND {_UNRATED} AND c.rating_requested_at IS NOT NULL"
            " AND c.rating_requested_at < :before",
            {"before": to_utc_text(before)},
        )

    async def how_assigned(self, case_ids: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        """Each case's latest event that chose its member, as (kind, detail): routed
        ("assigned", with its reason), "reassign", "handoff", or a low rating's escalation
        ("rated"). Cases with none are left out. One query per 500 cases (events_case)."""
        found: dict[int, tuple[str, dict[str, Any]]] = {}
        for start in range(0, len(case_ids), 500):
            marks, params = in_list("case", case_ids[start : start + 500])
            rows = await self.db.fetch(
                "SELECT case_id, kind, detail FROM events WHERE case_id IN"  # noqa: S608 - marks are ours
                f" {marks} AND kind IN ('assigned', 'reassign', 'handoff', 'rated')"
                " ORDER BY case_id, id",
                params,
            )
            for r in rows:  # in order: the last wins
                detail = json.loads(r["detail"])
                if r["kind"] != "rated" or "escalated_to" in detail:  # a rating of 3+ keeps it
                    found[r["case_id"]] = (r["kind"], detail)
        return found

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

    async def referrals(self, case_id: int) -> list[Referral]:
        """A case's referrals, oldest first."""
        rows = await self.db.fetch(
            "SELECT department_id, referred_at, due, answered_at, ended_at FROM referrals"
            " WHERE case_id = :id ORDER BY id",
            {"id": case_id},
        )
        return [
            Referral(r["department_id"], from_utc_text(r["referred_at"]),
                     from_utc_text(r["due"]), _when(r["answered_at"]), _when(r["ended_at"]))
            for r in rows
        ]  # fmt: skip

    async def messages(self, case_id: int) -> list[Message]:
        rows = await self.db.fetch(
            "SELECT m.at, m.direction, m.channel, m.body, m.media,"  # noqa: S608 - ours
            f" CASE WHEN {_PUBLIC_REPLY} THEN 1 ELSE 0 END AS public FROM messages m"
            " WHERE m.case_id = :id ORDER BY m.id",
            {"id": case_id},
        )
        return [
            Message(
                from_utc_text(r["at"]),
                r["direction"],
                r["channel"],
                r["body"],
                [(url, kind) for url, kind in json.loads(r["media"])],
                public=bool(r["public"]),
            )
            for r in rows
        ]

    async def latest_replies(self, case_ids: list[int]) -> dict[int, str]:
        """Each case's latest public word, by case id: a public reply (see
        tracking.is_public_reply) or a department's answer marked public, whichever came
        later, as /track shows them; cases with none are left out. Two queries for a page of
        cases (indexes messages_case, events_case)."""
        if not case_ids:
            return {}
        marks, params = in_list("case", case_ids)
        sql = (
            "SELECT m.case_id, m.at, m.body FROM messages m WHERE m.id IN (SELECT max(m.id)"  # noqa: S608 - marks are ours
            f" FROM messages m WHERE {_PUBLIC_REPLY} AND m.case_id IN {marks}"
            " GROUP BY m.case_id)"
        )
        latest = {r["case_id"]: (r["at"], r["body"]) for r in await self.db.fetch(sql, params)}
        answers = await self.db.fetch(
            "SELECT case_id, at, detail FROM events"  # noqa: S608 - marks are ours
            f" WHERE case_id IN {marks} AND kind = 'answer' ORDER BY case_id, id",
            params,
        )
        for r in answers:  # in order: a later one replaces an earlier word
            detail = json.loads(r["detail"])
            earlier = latest.get(r["case_id"], ("", ""))[0] <= r["at"]
            if detail.get("public") and detail.get("text") and earlier:
                latest[r["case_id"]] = (r["at"], str(detail["text"]))
        return {case_id: text for case_id, (_, text) in latest.items()}

    async def public_updates(self, case_ids: list[int]) -> dict[int, datetime]:
        """When each case last changed as its submitter may see it (its latest event a
        partner's webhook would be offered: never an internal note or a reassign), by case
        id; cases with none are left out. One query for a page of cases (index events_case)."""
        if not case_ids:
            return {}
        marks, params = in_list("case", case_ids)
        kinds, more = in_list("kind", sorted(PUBLIC_EVENTS))
        rows = await self.db.fetch(
            "SELECT case_id, max(at) AS at FROM events"  # noqa: S608 - marks are ours
            f" WHERE case_id IN {marks} AND kind IN {kinds} GROUP BY case_id",
            params | more,
        )
        return {r["case_id"]: from_utc_text(r["at"]) for r in rows}

    async def end_reasons(self, case_ids: list[int]) -> dict[int, str]:
        """The reason each withdrawn or rejected case was ended with, when it was given to be
        told (as tracking.ended_why reads it), by case id. One query for a page of cases."""
        if not case_ids:
            return {}
        marks, params = in_list("case", case_ids)
        rows = await self.db.fetch(
            "SELECT e.case_id, e.detail FROM events e JOIN cases c ON c.id = e.case_id"  # noqa: S608 - marks are ours
            f" WHERE e.case_id IN {marks} AND e.kind IN ('withdraw', 'reject')"
            " AND c.status IN ('withdrawn', 'rejected') ORDER BY e.case_id, e.id",
            params,
        )
        reasons: dict[int, str] = {}
        for r in rows:  # in order: the last one given to be told wins
            detail = json.loads(r["detail"])
            if not detail.get("public"):
                continue
            if detail.get("text"):
                reasons[r["case_id"]] = str(detail["text"])
            else:
                reasons.pop(r["case_id"], None)
        return reasons

    async def count(self) -> int:
        return int(await self.db.scalar("SELECT count(*) FROM cases") or 0)

    async def any(self) -> bool:
        """Whether any case is stored: one index probe, whatever the count."""
        return await self.db.scalar("SELECT 1 FROM cases LIMIT 1") is not None

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

    async def without_due_times(self, limit: int) -> list[Undue]:
        """Up to `limit` cases stored without their due times (the partial index
        cases_undue holds exactly those)."""
        rows = await self.db.fetch(
            "SELECT c.id, c.category, c.received_at, c.held_until FROM cases c"  # noqa: S608 - an int
            f" WHERE c.first_response_due IS NULL ORDER BY c.id LIMIT {int(limit)}"
        )
        return [
            Undue(r["id"], r["category"], from_utc_text(r["received_at"]), _when(r["held_until"]))
            for r in rows
        ]

    async def set_due_times(self, dues: Sequence[tuple[int, datetime, datetime]]) -> None:
        """Store cases' due times: (id, first response due, resolution due); a case that
        has them already keeps its own."""
        rows = [
            {"id": case_id, "respond": to_utc_text(respond), "resolve": to_utc_text(resolve)}
            for case_id, respond, resolve in dues
        ]

        async def apply(db: Conn) -> None:
            await db.execute(
                "UPDATE cases SET first_response_due = :respond, resolution_due = :resolve"
                " WHERE id = :id AND first_response_due IS NULL",
                rows,
            )

        if rows:
            await self.db.write(apply)

    async def all_codes(self, chunk: int = 20_000) -> AsyncIterator[list[str]]:
        """Every case code, in chunks (in id order, an index walk): to rebuild Redis's code
        filter when Redis lost it."""
        after = 0
        while True:
            rows = await self.db.fetch(
                "SELECT id, code FROM cases WHERE id > :after ORDER BY id LIMIT :n",
                {"after": after, "n": chunk},
            )
            if not rows:
                return
            after = int(rows[-1]["id"])
            yield [r["code"] for r in rows]

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
        """Store one routed intake (see `create_many`). Returns (case id, created); raises
        CodeConflict when its code is taken by another intake."""
        stored, _ = await self.create_many(
            [NewCase(code, intake, assignee_id, reason, due, copy)], now
        )
        found = stored[0]
        if found.case_id is None:
            raise CodeConflict(f"case code {code} is taken by another intake")
        return found.case_id, found.created

    async def create_many(
        self, new: Sequence[NewCase], now: datetime
    ) -> tuple[list[Stored], list[int]]:
        """Store routed intakes in one write: each case with its events, its first message
        and its texts (outbox rows). Once per intake key: an intake stored before gives
        its case untouched (created False), whatever code it came with. A code taken by
        another intake is reported (case_id None), never overwritten and never failing the
        rest. The unique constraints decide in the end: two workers storing the same
        intakes at once make each case once. On PostgreSQL this write runs at READ
        COMMITTED: the later one's insert waits for the other's commit and skips the row,
        which a look-up after it then finds, stored before. (SERIALIZABLE sent every other
        batch of two workers into a retry: their key look-ups and inserts share index
        pages.)"""
        if not new:
            return [], []
        stamp = to_utc_text(now)
        rows = [_case_row(n, stamp) for n in new]

        async def apply(db: Conn) -> tuple[list[Stored], list[int]]:
            async def look_up(keys: Iterable[str]) -> dict[str, tuple[int, str]]:
                named, params = db.one_of("intake_key", "key", dict.fromkeys(keys))
                sql = f"SELECT id, code, intake_key FROM cases WHERE {named}"  # noqa: S608 - ours
                return _by_key(await db.rows(sql, params))

            before = await look_up(n.intake.key for n in new)
            fresh = [row for n, row in zip(new, rows, strict=True) if n.intake.key not in before]
            after: dict[str, tuple[int, str]] = {}
            if fresh:
                # No conflict target: a code taken by another intake skips its row (told
                # apart below) without aborting the transaction.
                found = await db.insert(
                    schema.cases, fresh, "ON CONFLICT DO NOTHING", returning="id, code, intake_key"
                )
                if found is None:  # SQLite, one writer at a time: all of them are in now
                    after = await look_up(row["intake_key"] for row in fresh)
                else:
                    after = _by_key(found)
                    # Skipped: stored meanwhile by another worker, or their codes are taken.
                    skipped = [row["intake_key"] for row in fresh if row["intake_key"] not in after]
                    if skipped:
                        before |= await look_up(skipped)
            stored: list[Stored] = []
            made: set[int] = set()
            events: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            drafts: list[tuple[int, Draft]] = []
            for n in new:
                key = n.intake.key
                if key in before:
                    stored.append(Stored(before[key][0], False, before[key][1]))
                    continue
                case_id, code = after.get(key, (None, None))
                if case_id is None or code != n.code or case_id in made:
                    # None: its code belongs to another intake. Else the same intake twice
                    # in one batch: stored once.
                    stored.append(Stored(case_id, False, code))
                    continue
                made.add(case_id)
                stored.append(Stored(case_id, True, code))
                events.extend(_first_events(case_id, n, now))
                if n.intake.channel == "sms":
                    messages.append(_message_row(case_id, n.intake))
                drafts.extend((case_id, d) for d in n.drafts)
            if events:
                await db.insert(schema.events, events)
                if await webhooks.queue_in(db, now, case_ids=sorted(made)):
                    stored = [dataclasses.replace(s, offered=s.created) for s in stored]
            if messages:
                await db.insert(schema.messages, messages, "ON CONFLICT (external_id) DO NOTHING")
            return stored, await add_drafts_in(db, drafts, now)

        return await self.db.write(apply, guarded=True)

    async def load_history(
        self,
        rows: Sequence[dict[str, Any]],
        events: Sequence[Sequence[tuple[datetime, str, str, str | None, dict[str, Any]]]] = (),
    ) -> None:
        """Store cases as they ended up (columns by name; those left out are empty), in one
        write: a point's records from before, the demo's past months, `hotline bench`'s
        million. With `events` (one list per row: at, kind, status, actor, detail) each
        case gets its log, and its referrals and ratings from it; a case referred or rated
        without a `refer` or `rated` in its log gets the one its columns tell. Codes and
        intake keys already stored are skipped."""
        full = [_HISTORY_DEFAULTS | row for row in rows]

        async def apply(db: Conn) -> None:
            # Their updated_at is in the past: a month's kept report figures would not
            # see them (store/reports.py).
            await db.execute("DELETE FROM report_parts")
            after = await db.scalar("SELECT coalesce(max(id), 0) FROM cases")
            if not events:
                await db.execute(_INSERT_HISTORY, full)
            for row, log in zip(full, events, strict=True) if events else ():
                case_id = await db.scalar(_INSERT_HISTORY + " RETURNING id", row)
                if case_id is None:
                    continue
                log = _credited(log, row["assignee_id"])
                await db.execute(_INSERT_EVENT, [_event_row(case_id, *event) for event in log])
                for at, kind, _status, _actor, detail in log:
                    await keep_referrals(db, case_id, at, kind, detail)
                    await keep_ratings(db, case_id, at, kind, detail)
            await db.execute(_REFERRALS_FROM_COLUMNS, {"after": after})
            await db.execute(_RATINGS_FROM_COLUMNS, {"after": after})

        await self.db.write(apply)

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
        moved = await self.transition_replying(case, columns, event, now, None, when=when)
        return None if moved is None else moved[0]

    async def transition_replying(
        self,
        case: Case,
        columns: dict[str, Any],
        event: tuple[str, str, str | None, dict[str, Any]],
        now: datetime,
        reply: OutgoingReply | None,
        *,
        when: dict[str, Any] | None = None,
    ) -> tuple[int, int | None] | None:
        """`transition`, with a member's reply (if any) stored in the same write: the
        message that shows on /track and, to the submitter's number when there is one, its
        text (purpose `reply:<event id>`). Returns (event id, the text's outbox id or None),
        or None when the case had moved on."""
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

        async def write(db: Conn) -> tuple[int, int | None] | None:
            changed = await db.execute(
                f"UPDATE cases SET {sets} WHERE id = :id AND {checks}",  # noqa: S608 - names are ours
                params,
            )
            if changed != 1:
                return None
            event_id = await add_event(db, case.id, now, kind, status, actor, detail)
            if reply is None:
                return event_id, None
            outbox_id = None
            if reply.phone:
                texts = [(f"reply:{event_id}", reply.phone, reply.sms)]
                [outbox_id] = await add_texts_in(db, texts, now, case_id=case.id)
            await db.execute(
                "INSERT INTO messages (case_id, direction, channel, body, at, outbox_id, actor)"
                " VALUES (:case_id, 'out', :channel, :body, :at, :outbox_id, :actor)",
                {
                    "case_id": case.id,
                    "channel": "sms" if outbox_id else "web",
                    "body": reply.text,
                    "at": to_utc_text(now),
                    "outbox_id": outbox_id,
                    "actor": reply.actor,
                },
            )
            return event_id, outbox_id

        return await self.db.write(write)


async def add_event(
    db: Conn,
    case_id: int,
    at: datetime,
    kind: str,
    status: str,
    actor: str | None,
    detail: dict[str, Any],
) -> int:
    """Append to a case's event log, inside the caller's write (and offer it to partners'
    webhooks in the same write, when a submitter could see it)."""
    row = _event_row(case_id, at, kind, status, actor, detail)
    event_id = int(await db.scalar(_INSERT_EVENT + " RETURNING id", row))
    await keep_referrals(db, case_id, at, kind, detail)
    await keep_ratings(db, case_id, at, kind, detail)
    if kind in PUBLIC_EVENTS:
        await webhooks.queue_in(db, at, event_id=event_id)
    return event_id


async def keep_referrals(
    db: Conn, case_id: int, at: datetime, kind: str, detail: dict[str, Any]
) -> None:
    """The case's referral history after its event `kind` (service/workflow's rules), inside
    the caller's write: the open referral answered or taken back; a new one opened, or the
    open one's due date moved on (the same department, before its due date passed)."""
    at_text = to_utc_text(at)
    if kind == "refer" and detail.get("department") and detail.get("due"):
        extended = await db.execute(
            "UPDATE referrals SET due = :due WHERE case_id = :case_id AND answered_at IS NULL"
            " AND ended_at IS NULL AND department_id = :department AND due >= :at",
            {"due": detail["due"], "case_id": case_id, "department": detail["department"],
             "at": at_text},
        )  # fmt: skip
        if extended:
            return
    if kind in REFERRAL_ANSWERED or kind in REFERRAL_ENDED:
        column = "answered_at" if kind in REFERRAL_ANSWERED else "ended_at"
        await db.execute(
            f"UPDATE referrals SET {column} = :at WHERE case_id = :case_id"  # noqa: S608 - ours
            " AND answered_at IS NULL AND ended_at IS NULL",
            {"at": to_utc_text(at), "case_id": case_id},
        )
    if kind == "refer" and detail.get("department"):
        # A referral always has its due date; one loaded without (history from elsewhere)
        # is due when the case's latest is, else at once (as migration 0013 fills them).
        await db.execute(
            "INSERT INTO referrals (case_id, received_at, department_id, referred_at, due)"
            " SELECT id, received_at, :department, :at, coalesce(:due, referral_due, :at)"
            " FROM cases WHERE id = :case_id",
            {"case_id": case_id, "department": detail["department"], "at": to_utc_text(at),
             "due": detail.get("due") or None},
        )  # fmt: skip


def _credited(
    log: Sequence[tuple[datetime, str, str, str | None, dict[str, Any]]], member: str | None
) -> list[tuple[datetime, str, str, str | None, dict[str, Any]]]:
    """A loaded case's log with each `rated` event naming the member it is credited to, as
    service/casework writes it: the member the case was with just before (its latest
    `assigned`, `reassign` or `handoff`, or a low rating's escalation), else `member` (the
    case's own)."""
    credited = []
    current: str | None = None
    for at, kind, status, actor, detail in log:
        if kind == "rated" and "member" not in detail:
            detail = detail | {"member": current or member}
        credited.append((at, kind, status, actor, detail))
        handed = detail.get("to") if kind in _HANDED else detail.get("escalated_to")
        if handed and kind in (*_HANDED, "rated"):
            current = str(handed)
    return credited


async def keep_ratings(
    db: Conn, case_id: int, at: datetime, kind: str, detail: dict[str, Any]
) -> None:
    """A `rated` event's rating kept with the member it is credited to, inside the caller's
    write."""
    if kind != "rated" or not isinstance(detail.get("rating"), int):
        return
    await db.execute(
        "INSERT INTO ratings (case_id, received_at, member_id, rating, rated_at)"
        " SELECT id, received_at, :member, :rating, :at FROM cases WHERE id = :case_id",
        {"case_id": case_id, "member": detail.get("member") or None,
         "rating": detail["rating"], "at": to_utc_text(at)},
    )  # fmt: skip


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
    added = await db.scalar(_INSERT_MESSAGE + " RETURNING id", _message_row(case_id, intake))
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
        rated_at=_when(row["rated_at"]),
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
        reopens=row["reopens"],
        referral_answered_at=_when(row["referral_answered_at"]),
        closed_at=_when(row["closed_at"]),
        first_response_due=_when(row["first_response_due"]),
        resolution_due=_when(row["resolution_due"]),
        reception_id=row["reception_id"],
        address=row["address"],
        latitude=row["latitude"],
        longitude=row["longitude"],
    )
