"""The outbox: every message we send, its delivery status, and who asked not to get any."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.ports import Signals
from hotline.service.store import Store

# How far along a message is. A status callback may arrive late or out of order (Twilio
# does not promise ordering), so a status only ever replaces one of lower rank.
RANK = {
    "queued": 0,  # in our outbox, not yet handed to the provider
    "sending": 1,  # handed to the provider, answer not yet in
    "unknown": 1,  # the provider may or may not have it: reconcile before resending
    "accepted": 2,
    "scheduled": 2,
    "sending-provider": 2,
    "sent": 3,
    "delivered": 4,
    "read": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "not-sent": 5,  # no SMS provider configured: kept, visible, never dropped
    "opted-out": 5,  # the recipient opted out: never sent
}
# Twilio's own "sending" status is stored as "sending-provider" to keep it apart from ours.
PROVIDER_STATUS = {"sending": "sending-provider"}
FINAL = frozenset(s for s, rank in RANK.items() if rank == 5)
NO_PROVIDER = "not sent: no SMS provider configured"


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


def _item(row: aiosqlite.Row) -> OutboxItem:
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


def provider_status(status: str) -> str:
    """A provider's status word as the outbox stores it; unknown words count as 'sent'."""
    status = PROVIDER_STATUS.get(status, status)
    return status if status in RANK else "sent"


class Outbox:
    def __init__(self, store: Store, signals: Signals | None = None) -> None:
        self.store = store
        self.signals = signals

    async def enqueue(
        self,
        purpose_key: str,
        to_number: str,
        body: str,
        now: datetime,
        *,
        case_id: int | None = None,
        member_id: str | None = None,
    ) -> int:
        """Queue a message once per purpose and wake the sender. If the wake-up is lost the
        row stays queued and the sender's sweep picks it up."""
        item_id, new = await self.add(
            purpose_key, to_number, body, now, case_id=case_id, member_id=member_id
        )
        if new and self.signals is not None:
            await self.signals.outbound_queued(item_id)
        return item_id

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
        """Queue a message once per purpose (e.g. 'assigned:12:chen'); (id, newly added)."""

        at = to_utc_text(now)

        async def apply(db: aiosqlite.Connection) -> tuple[int, bool]:
            cur = await db.execute(
                "INSERT INTO outbox (purpose_key, case_id, member_id, to_number, body, status,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)"
                " ON CONFLICT (purpose_key) DO NOTHING",
                (
                    purpose_key,
                    case_id,
                    member_id,
                    to_number,
                    body,
                    at,
                    at,
                ),
            )
            if cur.rowcount == 1 and cur.lastrowid is not None:
                return cur.lastrowid, True
            async with db.execute(
                "SELECT id FROM outbox WHERE purpose_key = ?", (purpose_key,)
            ) as found:
                row = await found.fetchone()
            assert row is not None
            return int(row["id"]), False

        return await self.store.write(apply)

    async def get(self, item_id: int) -> OutboxItem | None:
        rows = await self.store.fetch("SELECT * FROM outbox WHERE id = ?", (item_id,))
        return _item(rows[0]) if rows else None

    async def for_case(self, case_id: int) -> list[OutboxItem]:
        rows = await self.store.fetch(
            "SELECT * FROM outbox WHERE case_id = ? ORDER BY id", (case_id,)
        )
        return [_item(r) for r in rows]

    async def claim(self, item_id: int, now: datetime) -> OutboxItem | None:
        """queued -> sending, counting the attempt; None if someone else has it or it is done."""

        async def apply(db: aiosqlite.Connection) -> OutboxItem | None:
            cur = await db.execute(
                "UPDATE outbox SET status = 'sending', attempts = attempts + 1, updated_at = ?"
                " WHERE id = ? AND status = 'queued'",
                (to_utc_text(now), item_id),
            )
            if cur.rowcount != 1:
                return None
            async with db.execute("SELECT * FROM outbox WHERE id = ?", (item_id,)) as c:
                row = await c.fetchone()
            return _item(row) if row else None

        return await self.store.write(apply)

    async def settle(
        self,
        item_id: int,
        status: str,
        now: datetime,
        *,
        sid: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        """Record what became of a send attempt (our own transitions; may requeue)."""
        if status not in RANK:
            raise ValueError(f"unknown outbox status {status!r}")

        async def apply(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE outbox SET status = ?, provider_sid = coalesce(?, provider_sid),"
                " error_code = ?, error_message = ?, updated_at = ? WHERE id = ?",
                (status, sid, error_code, error_message, to_utc_text(now), item_id),
            )

        await self.store.write(apply)

    async def apply_callback(
        self,
        sid: str,
        status: str,
        now: datetime,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> OutboxItem | None:
        """A provider's status report; only ever moves a message forward. Returns the item
        as it is afterwards, or None when the sid is not ours."""
        status = provider_status(status)

        async def apply(db: aiosqlite.Connection) -> OutboxItem | None:
            async with db.execute("SELECT * FROM outbox WHERE provider_sid = ?", (sid,)) as c:
                row = await c.fetchone()
            if row is None:
                return None
            item = _item(row)
            if RANK[status] <= RANK.get(item.status, 0) or item.status in FINAL:
                return item
            await db.execute(
                "UPDATE outbox SET status = ?, error_code = coalesce(?, error_code),"
                " error_message = coalesce(?, error_message), updated_at = ? WHERE id = ?",
                (status, error_code, error_message, to_utc_text(now), item.id),
            )
            async with db.execute("SELECT * FROM outbox WHERE id = ?", (item.id,)) as c:
                updated = await c.fetchone()
            return _item(updated) if updated else None

        return await self.store.write(apply)

    async def needing_attention(self, older_than: datetime) -> list[OutboxItem]:
        """Items stuck before a final answer: queued (the stream entry may be lost), or sending
        / unknown (the process may have died mid-send) since before `older_than`."""
        rows = await self.store.fetch(
            "SELECT * FROM outbox WHERE status IN ('queued', 'sending', 'unknown')"
            " AND updated_at < ? ORDER BY id",
            (to_utc_text(older_than),),
        )
        return [_item(r) for r in rows]

    async def set_opt_out(self, number: str, opted_out: bool, source: str, now: datetime) -> None:
        async def apply(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO sms_optouts (number, opted_out, source, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET"
                " opted_out = excluded.opted_out, source = excluded.source,"
                " updated_at = excluded.updated_at",
                (number, int(opted_out), source, to_utc_text(now)),
            )

        await self.store.write(apply)

    async def is_opted_out(self, number: str) -> bool:
        rows = await self.store.fetch(
            "SELECT opted_out FROM sms_optouts WHERE number = ?", (number,)
        )
        return bool(rows and rows[0]["opted_out"])
