"""Delivering outbox rows through the SMS provider, at most once each.

A send whose outcome is uncertain (timeout, 5xx) is marked `unknown` and reconciled against
the provider's message list before any resend; the sweep looks at rows stuck before a final
answer (their wake-up lost, or their process dead mid-send)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from hotline.service.outbox import NO_PROVIDER, Outbox, provider_status
from hotline.service.ports import OPTED_OUT_CODE, ProviderError, ProviderUncertain, SmsProvider
from hotline.service.store.outbox import OutboxItem

log = logging.getLogger(__name__)


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
        item = await self.outbox.get(item_id)
        if item is None or item.status != "queued":
            return
        if await self.outbox.is_opted_out(item.to_number):
            await self.outbox.settle(item.id, "opted-out", self.clock(), was="queued")
            return
        if self.provider is None:
            await self.outbox.settle(
                item.id, "not-sent", self.clock(), was="queued", error_message=NO_PROVIDER
            )
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
                item.id,
                "failed",
                self.clock(),
                was="sending",
                error_code=exc.code,
                error_message=exc.message,
            )
            if exc.code == OPTED_OUT_CODE:
                await self.outbox.set_opt_out(item.to_number, True, "provider-21610", self.clock())
            log.warning("outbox %d to %s failed: %s", item.id, item.to_number, exc)
            return
        except ProviderUncertain as exc:
            await self.outbox.settle(
                item.id, "unknown", self.clock(), was="sending", error_message=str(exc)
            )
            log.warning("outbox %d: outcome unknown (%s); will reconcile", item.id, exc)
            return
        # A delivery report may have arrived first (it moves the row on by its sid, which
        # it only has once this is stored): then this settles nothing.
        await self.outbox.settle(
            item.id, provider_status(sent.status), self.clock(), was="sending", sid=sent.sid
        )

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
                    item.id, provider_status(found.status), self.clock(), was=item.status,
                    sid=found.sid,
                )  # fmt: skip
            elif await self.outbox.settle(item.id, "queued", self.clock(), was=item.status):
                await self.deliver(item.id)  # requeued by this worker alone: sent once
        return acted
