"""Partners' webhooks and their deliveries. A delivery row is made in the same write as the
event it carries (`queue_in`, called by store/cases.py), once per (webhook, event): the
unique index makes a second impossible. The sender claims due rows (`claim`: one write moves
them to `sending`, so two senders never both take one) and settles each."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.store.database import Conn, Database, in_list
from hotline.service.workflow import PUBLIC_EVENTS


@dataclass(frozen=True)
class Webhook:
    id: int
    name: str
    url: str
    secret: str
    created_by: str
    created_at: str
    revoked_at: str | None


@dataclass(frozen=True)
class Taken:
    """Why a webhook was not added: the active webhook `name` has its name or (`field`
    "url") its address."""

    field: str
    name: str


@dataclass(frozen=True)
class Due:
    """A claimed delivery with all it needs to be sent: its webhook and its event."""

    id: int
    attempts: int
    webhook: Webhook
    event_id: int
    kind: str
    status: str
    at: datetime
    detail: dict[str, Any]
    code: str
    channel: str
    category: str | None
    department_id: str | None


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    webhook: str
    event_id: int
    kind: str
    code: str
    status: str
    attempts: int
    next_attempt_at: str
    last_status: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    status: str  # delivered, retrying or failed
    http_status: int | None
    error: str | None
    next_attempt_at: datetime
    tried: bool = True  # False: left for later untried (its claim's attempt is given back)


_KINDS, _KIND_PARAMS = in_list("kind", PUBLIC_EVENTS)
# Offer these events to every active webhook (`:events` is filled in by the caller).
_QUEUE = (
    "INSERT INTO webhook_deliveries (webhook_id, event_id, status, next_attempt_at, created_at,"
    " updated_at) SELECT w.id, e.id, 'queued', :at, :at, :at FROM events e, webhooks w"
    " WHERE w.revoked_at IS NULL AND e.kind IN KINDS AND e.{events}"
    " ON CONFLICT (webhook_id, event_id) DO NOTHING"
).replace("KINDS", _KINDS)
_WEBHOOK = "SELECT id, name, url, secret, created_by, created_at, revoked_at FROM webhooks"


async def queue_in(db: Conn, now: datetime, *, event_id: int | None = None,
                   case_ids: Sequence[int] = ()) -> int:  # fmt: skip
    """Inside the caller's write: offer a new event (or every event of new cases) to each
    active webhook, if it is one a submitter could see; returns how many deliveries."""
    params: dict[str, Any] = {"at": to_utc_text(now)} | _KIND_PARAMS
    if event_id is not None:
        return await db.execute(_QUEUE.format(events="id = :event"), params | {"event": event_id})
    if case_ids:
        marks, ids = in_list("case", case_ids)
        return await db.execute(_QUEUE.format(events=f"case_id IN {marks}"), params | ids)
    return 0


class WebhookRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(
        self, name: str, url: str, secret: str, actor: str, at: str, *, same: Callable[[str], bool]
    ) -> int | Taken:
        """The new webhook's id; `Taken` when an active one has this name, or an address
        `same` takes for this one's. Checked and written in one serializable write: two
        registrations at once cannot both pass."""

        async def write(db: Conn) -> int | Taken:
            active = await db.rows("SELECT name, url FROM webhooks WHERE revoked_at IS NULL")
            for hook in active:
                if hook["name"] == name:
                    return Taken("name", name)
            for hook in active:
                if same(hook["url"]):
                    return Taken("url", hook["name"])
            hook_id = await db.scalar(
                "INSERT INTO webhooks (name, url, secret, created_by, created_at)"
                " VALUES (:name, :url, :secret, :actor, :at) RETURNING id",
                {"name": name, "url": url, "secret": secret, "actor": actor, "at": at},
            )
            return int(hook_id)

        return await self.db.write(write)

    async def all(self) -> list[Webhook]:
        return [Webhook(**r) for r in await self.db.fetch(f"{_WEBHOOK} ORDER BY id")]

    async def reseal(self, webhook_id: int, was: str, secret: str) -> int:
        """Replace a webhook's stored secret, if it is still `was`; 1 if it was replaced."""

        async def write(db: Conn) -> int:
            return await db.execute(
                "UPDATE webhooks SET secret = :secret WHERE id = :id AND secret = :was",
                {"id": webhook_id, "was": was, "secret": secret},
            )

        return await self.db.write(write)

    async def revoke(self, name: str, actor: str, at: str) -> bool:
        """No new events for it; what is queued for it is dropped (marked failed)."""

        async def write(db: Conn) -> bool:
            hook_id = await db.scalar(
                "UPDATE webhooks SET revoked_at = :at, revoked_by = :actor"
                " WHERE name = :name AND revoked_at IS NULL RETURNING id",
                {"name": name, "actor": actor, "at": at},
            )
            if hook_id is None:
                return False
            # A POST under way may still land; nothing is sent after this.
            await db.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'revoked',"
                " updated_at = :at WHERE webhook_id = :id"
                " AND status IN ('queued', 'retrying', 'sending')",
                {"id": hook_id, "at": at},
            )
            return True

        return await self.db.write(write)

    async def claim(self, now: datetime, limit: int) -> list[Due]:
        """In one write, up to `limit` deliveries due now (queued, or retrying and their
        time has come) -> sending, counting the attempt."""
        at = to_utc_text(now)
        # A read first: waking with nothing due (the common case) takes no write lock.
        if (
            await self.db.scalar(
                "SELECT 1 FROM webhook_deliveries WHERE status IN ('queued', 'retrying')"
                " AND next_attempt_at <= :at LIMIT 1",
                {"at": at},
            )
            is None
        ):
            return []

        async def write(db: Conn) -> list[int]:
            # Offered while its webhook was being revoked (the router's batch runs at READ
            # COMMITTED on PostgreSQL, so its offer can land after the revoke's clean-up).
            await db.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = 'revoked',"
                " updated_at = :at WHERE status IN ('queued', 'retrying')"
                " AND webhook_id IN (SELECT id FROM webhooks WHERE revoked_at IS NOT NULL)",
                {"at": at},
            )
            rows = await db.rows(
                "UPDATE webhook_deliveries SET status = 'sending', attempts = attempts + 1,"
                " updated_at = :at WHERE id IN (SELECT id FROM webhook_deliveries"
                " WHERE status IN ('queued', 'retrying') AND next_attempt_at <= :at"
                " ORDER BY next_attempt_at, id LIMIT :limit) AND status IN ('queued', 'retrying')"
                " AND webhook_id IN (SELECT id FROM webhooks WHERE revoked_at IS NULL)"
                " RETURNING id",
                {"at": at, "limit": limit},
            )
            return [int(r["id"]) for r in rows]

        ids = await self.db.write(write, guarded=True)
        if not ids:
            return []
        marks, params = in_list("id", ids)
        rows = await self.db.fetch(
            "SELECT d.id, d.attempts, d.event_id, e.kind, e.status, e.at, e.detail, c.code,"  # noqa: S608 - marks are ours
            " c.channel, c.category, c.department_id, w.id AS w_id, w.name, w.url, w.secret,"
            " w.created_by, w.created_at, w.revoked_at FROM webhook_deliveries d"
            " JOIN events e ON e.id = d.event_id JOIN cases c ON c.id = e.case_id"
            f" JOIN webhooks w ON w.id = d.webhook_id WHERE d.id IN {marks} ORDER BY d.id",
            params,
        )
        return [
            Due(
                id=r["id"],
                attempts=r["attempts"],
                event_id=r["event_id"],
                kind=r["kind"],
                status=r["status"],
                at=from_utc_text(r["at"]),
                detail=json.loads(r["detail"]),
                code=r["code"],
                channel=r["channel"],
                category=r["category"],
                department_id=r["department_id"],
                webhook=Webhook(
                    r["w_id"],
                    r["name"],
                    r["url"],
                    r["secret"],
                    r["created_by"],
                    r["created_at"],
                    r["revoked_at"],
                ),
            )
            for r in rows
        ]

    async def settle(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """What became of claimed deliveries; a row that is no longer `sending` (swept back
        meanwhile) is left as it is. One left untried that was tried before keeps the answer
        it had then (why it is being retried), not "not tried"."""
        if not outcomes:
            return
        at = to_utc_text(now)
        rows = [
            {"id": o.delivery_id, "status": o.status, "code": o.http_status,
             "error": o.error, "next": to_utc_text(o.next_attempt_at), "at": at,
             "delivered": at if o.status == "delivered" else None,
             "untried": 0 if o.tried else 1}
            for o in outcomes
        ]  # fmt: skip

        async def write(db: Conn) -> None:
            await db.execute(
                "UPDATE webhook_deliveries SET status = :status,"
                " last_status = CASE WHEN :untried = 1 AND attempts > 1 THEN last_status"
                " ELSE :code END,"
                " last_error = CASE WHEN :untried = 1 AND attempts > 1 THEN last_error"
                " ELSE :error END, next_attempt_at = :next, updated_at = :at,"
                " delivered_at = :delivered, attempts = attempts - :untried"
                " WHERE id = :id AND status = 'sending'",
                rows,
            )

        await self.db.write(write, guarded=True)

    async def touch(self, ids: Sequence[int], now: datetime) -> None:
        """Deliveries still in hand (`sending`) are not stuck: stamped now, so no sweep
        (of this process or another) sends them back to the queue mid-round."""
        if not ids:
            return
        marks, params = in_list("id", ids)

        async def write(db: Conn) -> None:
            await db.execute(
                "UPDATE webhook_deliveries SET updated_at = :at"  # noqa: S608 - marks are ours
                f" WHERE status = 'sending' AND id IN {marks}",
                params | {"at": to_utc_text(now)},
            )

        await self.db.write(write, guarded=True)

    async def unstick(self, older_than: datetime, now: datetime) -> int:
        """Deliveries left `sending` by a sender that died mid-POST -> retrying now."""

        async def write(db: Conn) -> int:
            return await db.execute(
                "UPDATE webhook_deliveries SET status = 'retrying', next_attempt_at = :now,"
                " last_error = 'the sender stopped during the attempt', updated_at = :now"
                " WHERE status = 'sending' AND updated_at < :older",
                {"now": to_utc_text(now), "older": to_utc_text(older_than)},
            )

        return await self.db.write(write, guarded=True)

    async def recent(self, limit: int = 100) -> list[DeliveryRow]:
        rows = await self.db.fetch(
            "SELECT d.id, w.name AS webhook, d.event_id, e.kind, c.code, d.status, d.attempts,"
            " d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at"
            " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id"
            " JOIN events e ON e.id = d.event_id JOIN cases c ON c.id = e.case_id"
            " ORDER BY d.id DESC LIMIT :limit",
            {"limit": limit},
        )
        return [DeliveryRow(**r) for r in rows]

    async def counts(self) -> dict[str, int]:
        rows = await self.db.fetch(
            "SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status"
        )
        return {r["status"]: int(r["n"]) for r in rows}
