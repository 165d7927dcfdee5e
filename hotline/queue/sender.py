"""Outbound: queue a message (outbox row + stream entry) and the sender that delivers it.

At most one SMS per outbox row: a send whose outcome is uncertain (timeout, 5xx) is marked
`unknown` and reconciled against the provider's message list before any resend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import ResponseError

from hotline.queue import keys
from hotline.queue.intake import REDIS_DOWN
from hotline.queue.router import consumer_name
from hotline.service.outbox import NO_PROVIDER, Outbox, OutboxItem, provider_status

log = logging.getLogger(__name__)

OPTED_OUT_CODE = 21610  # Twilio: the recipient replied STOP


@dataclass(frozen=True)
class Sent:
    sid: str
    status: str


class ProviderError(Exception):
    """The provider refused the message for good (bad number, opted out...)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ProviderUncertain(Exception):
    """No clear answer (timeout, 5xx, connection lost): the message may have gone out."""


class SmsProvider(Protocol):
    async def send(self, to: str, body: str) -> Sent: ...

    async def find(self, to: str, body: str, since: datetime) -> Sent | None:
        """A message already sent to `to` with this body since `since`, if the provider has one."""
        ...


async def enqueue(
    client: redis.Redis,
    outbox: Outbox,
    purpose_key: str,
    to_number: str,
    body: str,
    now: datetime,
    *,
    case_id: int | None = None,
    member_id: str | None = None,
) -> int:
    """Queue a message once per purpose. If the stream entry cannot be written, the row
    stays queued and the sender's sweep picks it up."""
    item_id, new = await outbox.add(
        purpose_key, to_number, body, now, case_id=case_id, member_id=member_id
    )
    if new:
        with contextlib.suppress(*REDIS_DOWN):
            await client.xadd(keys.OUTBOUND_STREAM, {"id": str(item_id)})
    return item_id


class Sender:
    def __init__(
        self,
        client: redis.Redis,
        outbox: Outbox,
        provider: SmsProvider | None,
        clock: Callable[[], datetime],
        *,
        consumer: str | None = None,
        block_ms: int = 1000,
        settle_after: timedelta = timedelta(seconds=60),
    ) -> None:
        self.redis = client
        self.outbox = outbox
        self.provider = provider
        self.clock = clock
        self.consumer = consumer or consumer_name()
        self.block_ms = block_ms
        # How long a queued/sending/unknown item may sit before the sweep looks at it.
        self.settle_after = settle_after

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(
                keys.OUTBOUND_STREAM, keys.SENDER_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def deliver(self, item_id: int) -> None:
        """Try to send one outbox item, if it is still waiting to go."""
        item = await self.outbox.get(item_id)
        if item is None or item.status != "queued":
            return
        if await self.outbox.is_opted_out(item.to_number):
            await self.outbox.settle(item.id, "opted-out", self.clock())
            return
        if self.provider is None:
            await self.outbox.settle(item.id, "not-sent", self.clock(), error_message=NO_PROVIDER)
            return
        claimed = await self.outbox.claim(item.id, self.clock())
        if claimed is None:
            return  # another sender has it
        await self._send(claimed, self.provider)

    async def _send(self, item: OutboxItem, provider: SmsProvider) -> None:
        try:
            sent = await provider.send(item.to_number, item.body)
        except ProviderError as exc:
            await self.outbox.settle(
                item.id, "failed", self.clock(), error_code=exc.code, error_message=exc.message
            )
            if exc.code == OPTED_OUT_CODE:
                await self.outbox.set_opt_out(item.to_number, True, "provider-21610", self.clock())
            log.warning("outbox %d to %s failed: %s", item.id, item.to_number, exc)
            return
        except ProviderUncertain as exc:
            await self.outbox.settle(item.id, "unknown", self.clock(), error_message=str(exc))
            log.warning("outbox %d: outcome unknown (%s); will reconcile", item.id, exc)
            return
        await self.outbox.settle(item.id, provider_status(sent.status), self.clock(), sid=sent.sid)

    async def sweep(self) -> int:
        """Look at items stuck before a final answer; returns how many were acted on.

        queued: its stream entry may be lost, so deliver it now. sending/unknown: ask the
        provider whether it went out; adopt its answer if so, else queue it again."""
        acted = 0
        for item in await self.outbox.needing_attention(self.clock() - self.settle_after):
            acted += 1
            if item.status == "queued":
                await self.deliver(item.id)
                continue
            if self.provider is None:
                continue
            try:
                found = await self.provider.find(
                    item.to_number, item.body, item.created_at - timedelta(minutes=5)
                )
            except (ProviderUncertain, ProviderError) as exc:
                log.warning("outbox %d: cannot reconcile yet (%s)", item.id, exc)
                continue
            if found is not None:
                await self.outbox.settle(
                    item.id, provider_status(found.status), self.clock(), sid=found.sid
                )
            else:
                await self.outbox.settle(item.id, "queued", self.clock())
                await self.deliver(item.id)
        return acted

    async def _read(self, stream_id: str, block: int | None = None) -> list[tuple[bytes, Any]]:
        reply: Any = await self.redis.xreadgroup(
            keys.SENDER_GROUP, self.consumer, {keys.OUTBOUND_STREAM: stream_id}, 50, block
        )
        return [entry for _, entries in reply for entry in entries] if reply else []

    async def _handle(self, entries: list[tuple[bytes, Any]]) -> int:
        for entry_id, fields in entries:
            if fields and fields.get(b"id", b"").isdigit():
                await self.deliver(int(fields[b"id"]))
            await self.redis.xack(keys.OUTBOUND_STREAM, keys.SENDER_GROUP, entry_id)
            await self.redis.xdel(keys.OUTBOUND_STREAM, entry_id)
        return len(entries)

    async def run_burst(self) -> int:
        """Send everything waiting now (stream, then stuck items); return how many entries."""
        await self.ensure_group()
        total = 0
        while entries := await self._read("0") or await self._read(">"):
            total += await self._handle(entries)
        await self.sweep()
        return total

    async def run(self, stop: asyncio.Event, sweep_every: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        last_sweep = loop.time()
        own_pending = True
        while not stop.is_set():
            try:
                await self.ensure_group()
                entries = await self._read("0") if own_pending else []
                own_pending = bool(entries)
                if not entries:
                    entries = await self._read(">", block=self.block_ms)
                await self._handle(entries)
                if loop.time() - last_sweep > sweep_every:
                    last_sweep = loop.time()
                    await self.sweep()
            except REDIS_DOWN as exc:
                log.warning("sender: redis unavailable (%s); retrying", exc)
                await asyncio.sleep(1)
            except Exception:
                log.exception("sender: unexpected error; continuing")
                own_pending = True  # unacknowledged entries are read again
                await asyncio.sleep(1)
