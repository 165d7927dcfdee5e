"""Sender consumer: each outbound entry names outbox rows (`id`: one, from the console and
the timed steps; `ids`: a router batch's, comma-separated); delivery (service/delivery.py)
sends each at most once, the rows of one read taken and settled together. Between reads, and
when a burst has drained the stream, the outbox is swept for rows whose entry was lost or
whose sender died mid-send."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.consumer import Entry, Outcome, Poison, StreamConsumer
from hotline.queue.signals import WEBHOOKS
from hotline.service.delivery import Delivery
from hotline.service.webhooks import WebhookDelivery


class Sender(StreamConsumer):
    stream = keys.OUTBOUND_STREAM
    group = keys.SENDER_GROUP
    dead = keys.OUTBOUND_DEAD

    def __init__(
        self,
        client: redis.Redis,
        delivery: Delivery,
        *,
        webhooks: WebhookDelivery | None = None,
        sweep_every: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        self.delivery = delivery
        self.webhooks = webhooks
        self.sweep_every = sweep_every
        self._last_sweep: float | None = None

    async def process_batch(self, entries: list[Entry]) -> dict[bytes, Outcome]:
        """The rows of a whole read taken in one write and settled in one more."""
        outcomes: dict[bytes, Outcome] = {}
        ids: list[int] = []
        hooks = False
        for entry_id, fields in entries:
            named = (fields.get(b"ids") or fields.get(b"id") or b"").split(b",")
            if WEBHOOKS.encode() in fields and self.webhooks is not None:
                hooks = True
                outcomes[entry_id] = []
            elif all(item_id.isdigit() for item_id in named):
                ids.extend(map(int, named))
                outcomes[entry_id] = []
            else:
                outcomes[entry_id] = Poison("not an outbox row id")
        if ids:
            await self.delivery.deliver_many(ids)
        if hooks and self.webhooks is not None:
            # A partner that is slow or down holds this sender for at most its timeout:
            # never intake, never the router (they do not wait for the sender).
            await self.webhooks.run_due()
        return outcomes

    async def idle(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._last_sweep is None or now - self._last_sweep > self.sweep_every:
            self._last_sweep = now
            await self._sweep()

    async def run_burst(self) -> int:
        """Send everything waiting now (stream, then stuck items); returns how many entries."""
        total = await super().run_burst()
        await self._sweep()
        return total

    async def sweep(self) -> int:
        return await self._sweep()

    async def _sweep(self) -> int:
        """The outbox's stuck rows, and webhook deliveries due (retries, lost wake-ups)."""
        acted = await self.delivery.sweep()
        if self.webhooks is not None:
            acted += await self.webhooks.sweep()
        return acted
