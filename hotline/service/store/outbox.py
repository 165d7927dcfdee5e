"""Outbox rows (every message we send, with its delivery state) and the numbers that opted out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.store import schema
from hotline.service.store.database import Conn, Database, Row, in_list

# Final states of a text that never reached its recipient.
UNDELIVERED = ("undelivered", "failed", "canceled", "not-sent", "opted-out")


@dataclass(frozen=True)
class OutboxItem:
    id: int
    purpose_key: str
    case_id: int | None
    member_id: str | None
    to_number: str
    body: str
    status: str
    provider_sid: str | None
    error_code: int | None
    error_message: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime


def _item(row: Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        purpose_key=row["purpose_key"],
        case_id=row["case_id"],
        member_id=row["member_id"],
        to_number=row["to_number"],
        body=row["body"],
        status=row["status"],
        provider_sid=row["provider_sid"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        attempts=row["attempts"],
        created_at=from_utc_text(row["created_at"]),
        updated_at=from_utc_text(row["updated_at"]),
    )


@dataclass(frozen=True)
class Draft:
    """A text composed before its case has an id, queued by the same write that stores the
    case. Its purpose key, `kind:case id:tail` (assigned:12:chen, notice:12:assigned), makes
    it once per purpose like any outbox row."""

    kind: str
    tail: str
    to_number: str
    body: str
    member_id: str | None = None

    def purpose_key(self, case_id: int) -> str:
        return f"{self.kind}:{case_id}:{self.tail}"


async def add_drafts_in(db: Conn, drafts: list[tuple[int, Draft]], now: datetime) -> list[int]:
    """Queue (case id, draft) texts of cases created in the caller's write; returns the ids
    of their outbox rows (a new case has no others)."""
    if not drafts:
        return []
    at = to_utc_text(now)
    found = await db.insert(
        schema.outbox,
        [
            {
                "purpose_key": draft.purpose_key(case_id),
                "case_id": case_id,
                "member_id": draft.member_id,
                "to_number": draft.to_number,
                "body": draft.body,
                "status": "queued",
                "created_at": at,
                "updated_at": at,
            }
            for case_id, draft in drafts
        ],
        "ON CONFLICT (purpose_key) DO NOTHING",
        returning="id",
    )
    if found is None:
        cases, params = db.one_of("case_id", "case", dict.fromkeys(c for c, _ in drafts))
        found = await db.rows(f"SELECT id FROM outbox WHERE {cases}", params)  # noqa: S608 - ours
    return sorted(int(r["id"]) for r in found)


@dataclass(frozen=True)
class Settled:
    """What became of one send attempt."""

    item_id: int
    status: str
    sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    # The row's attempts when this worker took it (or saw it stuck): a row taken again since
    # (requeued by a sweep, sent by another worker) has more, and is not this worker's to
    # settle. None: not fenced.
    attempts: int | None = None


# The scheduler_state mark counting opt-out changes.
OPT_OUTS_CHANGED = "opt-outs-changed"
_SETTLE = (
    "UPDATE outbox SET status = :status, provider_sid = coalesce(:sid, provider_sid),"
    " error_code = :code, error_message = :message, updated_at = :now"
    " WHERE id = :id AND status = :was"
)
_SETTLE_CLAIM = _SETTLE + " AND attempts = :attempts"

_ADOPT_SID = "UPDATE outbox SET provider_sid = :sid WHERE id = :id AND provider_sid IS NULL"


async def add_texts_in(
    db: Conn, texts: list[tuple[str, str, str]], now: datetime, *, case_id: int | None = None
) -> list[int]:
    """Queue (purpose key, number, body) texts in the caller's write, each once per purpose
    (about case `case_id`, when given); returns the ids of the rows added now."""
    at = to_utc_text(now)
    added = []
    for key, to, body in texts:
        new_id = await db.scalar(
            "INSERT INTO outbox (purpose_key, case_id, to_number, body, status, created_at,"
            " updated_at) VALUES (:key, :case_id, :to, :body, 'queued', :at, :at)"
            " ON CONFLICT (purpose_key) DO NOTHING RETURNING id",
            {"key": key, "case_id": case_id, "to": to, "body": body, "at": at},
        )
        if new_id is not None:
            added.append(int(new_id))
    return added


async def cancel_unsent_in(db: Conn, to_number: str, purpose_prefix: str, now: datetime) -> None:
    """In the caller's write: texts to `to_number` whose purpose key begins `purpose_prefix`
    and that are still queued (not handed to the provider) are cancelled, never sent."""
    await db.execute(
        "UPDATE outbox SET status = 'canceled', updated_at = :at WHERE status = 'queued'"
        " AND to_number = :to AND purpose_key LIKE :prefix",
        {"at": to_utc_text(now), "to": to_number, "prefix": purpose_prefix + "%"},
    )


async def _get_in(db: Conn, item_id: int) -> OutboxItem | None:
    row = await db.row("SELECT * FROM outbox WHERE id = :id", {"id": item_id})
    return _item(row) if row else None


class OutboxRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self,
        purpose_key: str,
        to_number: str,
        body: str,
        now: datetime,
        *,
        case_id: int | None = None,
        member_id: str | None = None,
    ) -> tuple[int, bool]:
        """A queued row, once per purpose; (id, newly added)."""
        at = to_utc_text(now)

        async def apply(db: Conn) -> tuple[int, bool]:
            new_id = await db.scalar(
                "INSERT INTO outbox (purpose_key, case_id, member_id, to_number, body, status,"
                " created_at, updated_at) VALUES (:key, :case_id, :member_id, :to, :body,"
                " 'queued', :at, :at) ON CONFLICT (purpose_key) DO NOTHING RETURNING id",
                {
                    "key": purpose_key,
                    "case_id": case_id,
                    "member_id": member_id,
                    "to": to_number,
                    "body": body,
                    "at": at,
                },
            )
            if new_id is not None:
                return int(new_id), True
            found = await db.scalar(
                "SELECT id FROM outbox WHERE purpose_key = :key", {"key": purpose_key}
            )
            return int(found), False

        return await self.db.write(apply)

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self.db.fetch_one("SELECT * FROM outbox WHERE id = :id", {"id": item_id})
        return _item(row) if row else None

    async def for_case(self, case_id: int) -> list[OutboxItem]:
        rows = await self.db.fetch(
            "SELECT * FROM outbox WHERE case_id = :id ORDER BY id", {"id": case_id}
        )
        return [_item(r) for r in rows]

    async def take(
        self, item_ids: Sequence[int], now: datetime, *, unsent: str | None = None
    ) -> list[OutboxItem]:
        """In one write, of these rows those still queued: to a number that opted out ->
        opted-out; the rest -> sending, counting the attempt (returned: the caller sends
        them), or with `unsent` -> not-sent with that message (no provider to send with)."""

        async def apply(db: Conn) -> list[OutboxItem]:
            named, ids = db.one_of("id", "id", dict.fromkeys(item_ids))
            # Never a row the provider has (its sid): its text went, whatever its status says.
            waiting = f"{named} AND status = 'queued' AND provider_sid IS NULL"
            params = ids | {"now": to_utc_text(now), "unsent": unsent}
            await db.execute(
                f"UPDATE outbox SET status = 'opted-out', updated_at = :now WHERE {waiting}"  # noqa: S608 - ours
                " AND to_number IN (SELECT number FROM sms_optouts WHERE opted_out = 1)",
                params,
            )
            if unsent is not None:
                await db.execute(
                    "UPDATE outbox SET status = 'not-sent', error_code = NULL,"  # noqa: S608 - ours
                    f" error_message = :unsent, updated_at = :now WHERE {waiting}",
                    params,
                )
                return []
            rows = await db.rows(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1,"  # noqa: S608 - ours
                f" updated_at = :now WHERE {waiting} RETURNING *",
                params,
            )
            return sorted((_item(r) for r in rows), key=lambda item: item.id)

        return await self.db.write(apply, guarded=True)

    async def settle_many(self, settled: Sequence[Settled], now: datetime, *, was: str) -> None:
        """`settle` for many rows in one write; a row that had moved on is left as it is."""
        if not settled:
            return
        at = to_utc_text(now)
        rows = [
            {"was": was, "status": s.status, "sid": s.sid, "code": s.error_code,
             "message": s.error_message, "now": at, "id": s.item_id, "attempts": s.attempts}
            for s in settled
        ]  # fmt: skip

        async def apply(db: Conn) -> None:
            await db.execute(_SETTLE_CLAIM, rows)

        await self.db.write(apply, guarded=True)

    async def settle(
        self,
        item_id: int,
        status: str,
        now: datetime,
        *,
        was: str,
        sid: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
        attempts: int | None = None,
    ) -> bool:
        """Move a row from `was` to `status` (with `attempts`, only if it has as many as
        then); False when it had moved on meanwhile (a delivery report came, another worker
        claimed it, or requeued and took it again)."""

        async def apply(db: Conn) -> bool:
            params = {
                "was": was,
                "status": status,
                "sid": sid,
                "code": error_code,
                "message": error_message,
                "now": to_utc_text(now),
                "id": item_id,
            }
            if attempts is None:
                return await db.execute(_SETTLE, params) == 1
            return await db.execute(_SETTLE_CLAIM, params | {"attempts": attempts}) == 1

        return await self.db.write(apply)

    async def still_taken(self, item_id: int, attempts: int) -> bool:
        """Whether the row is still `sending` under the claim that made its attempts this
        many: not requeued (by a sweep that took this worker for dead) nor taken again."""
        found = await self.db.scalar(
            "SELECT count(*) FROM outbox WHERE id = :id AND status = 'sending'"
            " AND attempts = :attempts",
            {"id": item_id, "attempts": attempts},
        )
        return bool(found)

    async def sid_owners(self, sids: Sequence[str]) -> dict[str, int]:
        """The rows that already have one of these provider sids, by sid."""
        owners: dict[str, int] = {}
        for start in range(0, len(sids), 500):
            marks, params = in_list("sid", sids[start : start + 500])
            rows = await self.db.fetch(
                f"SELECT id, provider_sid FROM outbox WHERE provider_sid IN {marks}",  # noqa: S608 - marks are ours
                params,
            )
            owners |= {r["provider_sid"]: int(r["id"]) for r in rows}
        return owners

    async def advance_by_sid(
        self,
        sid: str,
        status: str,
        now: datetime,
        accept: Callable[[OutboxItem], bool],
        *,
        error_code: int | None = None,
        error_message: str | None = None,
        ref: int | None = None,
    ) -> OutboxItem | None:
        """Move the row with this provider sid to `status` if `accept(row)`, in one write.
        When no row has the sid yet, row `ref` takes it if it has none (the send's answer not
        stored yet). Returns the row as it is afterwards, or None when the sid is not ours."""

        async def apply(db: Conn) -> OutboxItem | None:
            row = await db.row("SELECT * FROM outbox WHERE provider_sid = :sid", {"sid": sid})
            adopt = {"sid": sid, "id": ref}
            if row is None and ref is not None and await db.execute(_ADOPT_SID, adopt):
                row = await db.row("SELECT * FROM outbox WHERE id = :id", {"id": ref})
            if row is None:
                return None
            item = _item(row)
            if not accept(item):
                return item
            await db.execute(
                "UPDATE outbox SET status = :status, error_code = coalesce(:code, error_code),"
                " error_message = coalesce(:message, error_message), updated_at = :now"
                " WHERE id = :id",
                {
                    "status": status,
                    "code": error_code,
                    "message": error_message,
                    "now": to_utc_text(now),
                    "id": item.id,
                },
            )
            return await _get_in(db, item.id)

        return await self.db.write(apply)

    async def stuck(self, statuses: tuple[str, ...], older_than: datetime) -> list[OutboxItem]:
        """Rows in one of `statuses` not touched since before `older_than`."""
        marks, params = in_list("status", statuses)
        rows = await self.db.fetch(
            f"SELECT * FROM outbox WHERE status IN {marks} AND updated_at < :before ORDER BY id",  # noqa: S608 - marks are ours
            params | {"before": to_utc_text(older_than)},
        )
        return [_item(r) for r in rows]

    async def by_status(self) -> dict[str, int]:
        rows = await self.db.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    async def set_opt_out(self, number: str, opted_out: bool, source: str, now: datetime) -> None:
        async def apply(db: Conn) -> None:
            await db.execute(
                "INSERT INTO sms_optouts (number, opted_out, source, updated_at)"
                " VALUES (:number, :out, :source, :now) ON CONFLICT (number) DO UPDATE SET"
                " opted_out = excluded.opted_out, source = excluded.source,"
                " updated_at = excluded.updated_at",
                {
                    "number": number,
                    "out": int(opted_out),
                    "source": source,
                    "now": to_utc_text(now),
                },
            )
            # Counted in the same write: the web processes follow the count (OptOutList).
            await db.execute(
                "INSERT INTO scheduler_state (name, value) VALUES (:name, '1') ON CONFLICT (name)"
                " DO UPDATE SET value = CAST(CAST(scheduler_state.value AS INTEGER) + 1 AS TEXT)",
                {"name": OPT_OUTS_CHANGED},
            )

        await self.db.write(apply)

    async def opted_out_numbers(self) -> list[str]:
        """Every number opted out now (those that opted back in are not)."""
        rows = await self.db.fetch("SELECT number FROM sms_optouts WHERE opted_out = 1")
        return [r["number"] for r in rows]

    async def opt_outs_changed(self) -> str | None:
        """How many times an opt-out was changed (None: never), counted in each change's own
        write: what the web processes follow."""
        row = await self.db.fetch_one(
            "SELECT value FROM scheduler_state WHERE name = :name", {"name": OPT_OUTS_CHANGED}
        )
        return str(row["value"]) if row else None
