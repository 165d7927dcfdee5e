"""Delivering outbox rows through the SMS provider, at most once each.

A send whose outcome is uncertain (timeout, 5xx) is marked `unknown` and reconciled against
the provider's message list before any resend; the sweep looks at rows stuck before a final
answer (their wake-up lost, or their process dead mid-send)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from hotline.service.outbox import Outbox, provider_status
from hotline.service.ports import OPTED_OUT_CODE, ProviderError, ProviderUncertain, SmsProvider
from hotline.service.store.database import STORE_FAULTS
from hotline.service.store.outbox import OutboxItem, Settled

log = logging.getLogger(__name__)

SENDS_AT_ONCE = 8  # concurrent requests to the provider from one sender
TAKEN_AT_ONCE = 500  # rows taken in one write (a read of the stream may name thousands)
# How long before a row was made its text may show in the provider's list (their clock and
# ours differ), when looking there for it.
SEND_SLACK = timedelta(minutes=5)


class Delivery:
    def __init__(
        self,
        outbox: Outbox,
        provider: SmsProvider | None,
        clock: Callable[[], datetime],
        *,
        settle_after: timedelta = timedelta(seconds=60),
    ) -> None:
        self.outbox = outbox
        self.provider = provider
        self.clock = clock
        # How long a queued/sending/unknown item may sit before the sweep looks at it.
        self.settle_after = settle_after

    async def deliver(self, item_id: int) -> None:
        """Try to send one outbox item, if it is still waiting to go."""
        await self.deliver_many([item_id])

    async def deliver_many(self, item_ids: Sequence[int]) -> None:
        """Send the items still waiting to go, up to TAKEN_AT_ONCE at a time: one write takes
        them (opted-out numbers and the no-provider case settle there), the sends run a few
        at a time, and one more write records what became of them. A process that dies
        between the two leaves its rows `sending`: the sweep asks the provider before any
        resend."""
        for start in range(0, len(item_ids), TAKEN_AT_ONCE):
            await self._deliver(item_ids[start : start + TAKEN_AT_ONCE])

    async def _deliver(self, item_ids: Sequence[int]) -> None:
        claimed = await self.outbox.take(item_ids, self.clock(), can_send=self.provider is not None)
        if not claimed or self.provider is None:
            return
        provider = self.provider
        limit = asyncio.Semaphore(SENDS_AT_ONCE)

        async def send(item: OutboxItem) -> Settled | None:
            async with limit:
                # Still ours? A worker paused, or behind a slow provider, past the sweep's
                # wait finds its rows requeued (and perhaps sent) by another: it sends none
                # of them, and settles none.
                try:
                    ours = await self.outbox.still_taken(item)
                except STORE_FAULTS as exc:  # the store down: unsent is safe (the sweep asks)
                    log.warning("outbox %d: cannot tell it is still ours (%r); not sent",
                                item.id, exc)  # fmt: skip
                    return None
                if not ours:
                    log.warning("outbox %d was taken from this worker; not sent", item.id)
                    return None
                outcome = await self._send(item, provider)
                return dataclasses.replace(outcome, attempts=item.attempts)

        sent = await asyncio.gather(*(send(item) for item in claimed))
        settled = [outcome for outcome in sent if outcome is not None]
        # A delivery report may have come first (it finds its row by the outbox id in its
        # URL and stores the sid): then a row's settle changes nothing; so for a row taken
        # again since (its attempts moved on).
        await self.outbox.settle_many(settled, self.clock(), was="sending")
        for item, outcome in zip(claimed, sent, strict=True):
            if outcome is not None and outcome.error_code == OPTED_OUT_CODE:
                await self.outbox.set_opt_out(item.to_number, True, "provider-21610", self.clock())

    async def _send(self, item: OutboxItem, provider: SmsProvider) -> Settled:
        try:
            sent = await provider.send(item.to_number, item.body, ref=item.id)
        except ProviderError as exc:
            log.warning("outbox %d to %s failed: %s", item.id, item.to_number, exc)
            return Settled(item.id, "failed", error_code=exc.code, error_message=exc.message)
        except ProviderUncertain as exc:
            log.warning("outbox %d: outcome unknown (%s); will reconcile", item.id, exc)
            return Settled(item.id, "unknown", error_message=str(exc))
        return Settled(item.id, provider_status(sent.status), sid=sent.sid)

    async def sweep(self) -> int:
        """Look at items stuck before a final answer; returns how many were acted on.

        queued: its stream entry may be lost, so deliver it now. sending/unknown: ask the
        provider whether it went out; adopt its answer if so, else queue it again."""
        acted = 0
        lost: list[int] = []  # queued rows whose entry went missing: sent together below
        asking: dict[str, list[OutboxItem]] = {}  # sending/unknown rows, by number
        for item in await self.outbox.needing_attention(self.clock() - self.settle_after):
            acted += 1
            if item.status == "queued" and item.provider_sid:
                # The provider's own "queued", stored by a sender from before that word was
                # told apart from ours (migration 0009): it has the text.
                await self.outbox.settle(item.id, "queued-provider", self.clock(), was="queued")
            elif item.status == "queued":
                lost.append(item.id)
            elif self.provider is not None:
                asking.setdefault(item.to_number, []).append(item)
        # After an outage hundreds may wait, most of them to the member on duty: the
        # provider's list of each number is read back once, and the rows found unsent are
        # taken in one write and sent eight at a time, as a read of the stream is.
        for number, items in asking.items():
            assert self.provider is not None
            lost += await self._reconcile(self.provider, number, items)
        await self.deliver_many(lost)
        return acted

    async def _reconcile(
        self, provider: SmsProvider, number: str, items: list[OutboxItem]
    ) -> list[int]:
        """Settle the rows to `number` whose outcome is unknown by the provider's list of
        messages sent to it: a row whose text is there takes that message's sid and status;
        one whose text is not is queued again. Returns those queued again.

        Each message is one row's at most: a row never takes a message another row has
        (two identical texts, one stored with its sid), and of identical texts both unknown
        the older row takes the older message."""
        items = sorted(items, key=lambda i: (i.created_at, i.id))
        try:
            listing = await provider.sent_to(number, items[0].created_at - SEND_SLACK)
        except ProviderUncertain as exc:
            log.warning("outbox %s: cannot reconcile yet (%s)",
                        ", ".join(str(i.id) for i in items), exc)  # fmt: skip
            return []
        owners = await self.outbox.sid_owners([m.sid for m in listing.messages])
        free = list(reversed(listing.messages))  # oldest first
        requeued: list[int] = []
        for item in items:
            after = item.created_at - SEND_SLACK
            if after < listing.complete_since:
                log.warning("outbox %d: too many texts to %s since to tell; not reconciled",
                            item.id, number)  # fmt: skip
                continue
            found = next(
                (
                    m
                    for m in free
                    if owners.get(m.sid, item.id) == item.id
                    and (m.created is None or m.created >= after)
                    and m.body.endswith(item.body)  # a trial account prefixes its own words
                ),
                None,
            )
            # Fenced by the row's attempts as read: another worker's sweep may have requeued
            # it and taken it again meanwhile (then it is theirs, and sent by them).
            if found is not None:
                free.remove(found)
                await self.outbox.settle(
                    item.id, provider_status(found.status), self.clock(), was=item.status,
                    sid=found.sid, attempts=item.attempts,
                )  # fmt: skip
            elif await self.outbox.settle(
                item.id, "queued", self.clock(), was=item.status, attempts=item.attempts
            ):
                requeued.append(item.id)  # requeued by this worker alone: sent once
        return requeued
