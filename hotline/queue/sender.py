"""Sender consumer: each outbound entry names outbox rows (`id`: one, from the console and
the timed steps; `ids`: a router batch's, comma-separated); delivery (service/delivery.py)
sends each at most once, the rows of one read taken and settled together. Between reads, and
when a burst has drained the stream, the outbox is swept for rows whose entry was lost or
whose sender died mid-send. Partners' webhooks are posted by a task of the sender's own
(`run`): a partner that is slow or down never holds up a text."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.consumer import Entry, Outcome, Poison, StreamConsumer
from hotline.queue.signals import WEBHOOKS
from hotline.service.delivery import Delivery
from hotline.service.webhooks import WebhookDelivery

log = logging.getLogger(__name__)
# On stopping, the webhooks' round in hand is given this long (within the app's grace for
# the whole sender, 5 s): a POST cut short stays `sending` and is retried once a sweep finds
# it (store/webhooks `unstick`).
HOOKS_STOP_WAIT = 3.0


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
        # While `run` runs: the task posting webhooks, and whether it is wanted once more.
        self._background = False
        self._hooks: asyncio.Task[None] | None = None
        self._hooks_wanted = False

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
        if hooks:
            await self._post_hooks()
        return outcomes

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, webhooks posted beside the texts."""
        self._background = True
        try:
            await super().run(stop)
        finally:
            self._background = False
            await self._stop_hooks()

    async def _post_hooks(self) -> None:
        """The webhook deliveries due: in a task of their own while `run` runs (woken
        again if it is under way), else (a burst) here and now."""
        if self.webhooks is None:
            return
        if not self._background:
            await self.webhooks.run_due()
            return
        self._hooks_wanted = True
        if self._hooks is None or self._hooks.done():
            self._hooks = asyncio.create_task(self._hook_rounds(), name="webhooks")

    async def _hook_rounds(self) -> None:
        assert self.webhooks is not None
        while self._hooks_wanted and self._background:
            self._hooks_wanted = False
            try:
                await self.webhooks.run_due()
            except Exception:  # the database gone a moment: the next wake-up or sweep retries
                log.exception("webhooks: a round of deliveries failed; retried later")
                return

    async def _stop_hooks(self) -> None:
        """The webhooks' round in hand, given HOOKS_STOP_WAIT, then cancelled: never left
        running after the sender, even when the sender is cancelled while it waits."""
        task, self._hooks = self._hooks, None
        if task is None:
            return
        try:
            await asyncio.wait({task}, timeout=HOOKS_STOP_WAIT)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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
            await self.webhooks.unstick()
            await self._post_hooks()
        return acted
