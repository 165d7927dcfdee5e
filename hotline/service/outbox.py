"""The outbox: every message we send, its delivery status, and who asked not to get any."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime

from hotline.service.i18n import N_
from hotline.service.ports import OPTED_OUT_CODE, Signals
from hotline.service.store.outbox import OutboxItem, OutboxRepo, Settled

# How far along a message is. A status callback may arrive late or out of order (Twilio
# does not promise ordering), so a status only ever replaces one of lower rank.
RANK = {
    "queued": 0,  # in our outbox, not yet handed to the provider
    "sending": 1,  # handed to the provider, answer not yet in
    "unknown": 1,  # the provider may or may not have it: reconcile before resending
    "queued-provider": 2,  # the provider's own "queued": it has the text, not yet sent on
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
# Twilio's own "queued" and "sending" are stored as "queued-provider" and "sending-provider",
# apart from ours: a row of ours still "queued" is one the sender may take and send.
PROVIDER_STATUS = {"queued": "queued-provider", "sending": "sending-provider"}
FINAL = frozenset(s for s, rank in RANK.items() if rank == 5)
NO_PROVIDER = N_("not sent: no SMS provider configured")  # shown translated
# The opted-out numbers held in memory are read again at least this often (seconds), even
# when no change was counted (the table edited by hand, a database restored).
REREAD_AFTER = 60.0


# Words only the outbox itself writes: a provider saying one is saying a word unknown to us.
OURS = frozenset({"unknown", "not-sent", "opted-out", "queued-provider", "sending-provider"})


def provider_status(status: str) -> str:
    """A provider's status word as the outbox stores it; unknown words (and ours) count as
    'sent': it has the text, nothing more is known."""
    if status in OURS:
        return "sent"
    status = PROVIDER_STATUS.get(status, status)
    return status if status in RANK else "sent"


class Outbox:
    """Queueing messages once per purpose, and their delivery state moving only forward."""

    def __init__(self, repo: OutboxRepo, signals: Signals | None = None) -> None:
        self.repo = repo
        self.signals = signals
        self.opt_outs = OptOutList(repo)

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
        """Queue a message once per purpose (e.g. 'assigned:12:chen') and wake the sender.
        If the wake-up is lost the row stays queued and the sender's sweep picks it up."""
        item_id, new = await self.repo.add(
            purpose_key, to_number, body, now, case_id=case_id, member_id=member_id
        )
        if new:
            await self.wake([item_id])
        return item_id

    async def wake(self, item_ids: Sequence[int] | None) -> None:
        """Wake the sender for rows queued in another write (its sweep finds them else)."""
        if item_ids and self.signals is not None:
            for item_id in item_ids:
                await self.signals.outbound_queued(item_id)

    async def get(self, item_id: int) -> OutboxItem | None:
        return await self.repo.get(item_id)

    async def for_case(self, case_id: int) -> list[OutboxItem]:
        return await self.repo.for_case(case_id)

    async def take(
        self, item_ids: Sequence[int], now: datetime, *, can_send: bool
    ) -> list[OutboxItem]:
        """Of these rows, those still queued: to numbers that opted out -> opted-out; the
        rest -> sending (returned: the caller sends them), or not-sent when there is no
        provider to send with. One write, whatever the number of rows."""
        return await self.repo.take(item_ids, now, unsent=None if can_send else NO_PROVIDER)

    async def settle_many(self, settled: Sequence[Settled], now: datetime, *, was: str) -> None:
        """What became of many send attempts, in one write (see `settle`), each only on a row
        still taken with the attempts it names (`Settled.attempts`)."""
        for s in settled:
            if s.status not in RANK:
                raise ValueError(f"unknown outbox status {s.status!r}")
            if s.attempts is None:
                raise ValueError(f"outbox {s.item_id}: a settle of many names its attempts")
        await self.repo.settle_many(settled, now, was=was)

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
        """Record what became of a send attempt (our own transitions; may requeue), if the
        row is still in the status `was` this worker saw (and, given, its `attempts`);
        False when it had moved on."""
        if status not in RANK:
            raise ValueError(f"unknown outbox status {status!r}")
        return await self.repo.settle(
            item_id,
            status,
            now,
            was=was,
            sid=sid,
            error_code=error_code,
            error_message=error_message,
            attempts=attempts,
        )

    async def still_taken(self, item: OutboxItem) -> bool:
        """Whether `item`, taken by this worker, is still its to send (see the repo's)."""
        return await self.repo.still_taken(item.id, item.attempts)

    async def sid_owners(self, sids: Sequence[str]) -> dict[str, int]:
        """The rows that already have one of these provider sids, by sid."""
        return await self.repo.sid_owners(sids)

    async def apply_callback(
        self,
        sid: str,
        status: str,
        now: datetime,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
        ref: int | None = None,
    ) -> OutboxItem | None:
        """A provider's status report; only ever moves a message forward. `ref` is the outbox
        row named in the report's URL: a report that comes before the send's answer is stored
        finds its row by it (and gives it its sid). Returns the item as it is afterwards, or
        None when the message is not ours."""
        status = provider_status(status)

        def forward(item: OutboxItem) -> bool:
            return RANK[status] > RANK.get(item.status, 0) and item.status not in FINAL

        item = await self.repo.advance_by_sid(
            sid, status, now, forward, error_code=error_code, error_message=error_message, ref=ref
        )
        if item is not None and error_code == OPTED_OUT_CODE:  # the recipient texted STOP
            await self.set_opt_out(item.to_number, True, "provider-21610", now)
        return item

    async def needing_attention(self, older_than: datetime) -> list[OutboxItem]:
        """Items stuck before a final answer: queued (the stream entry may be lost), or sending
        / unknown (the process may have died mid-send) since before `older_than`."""
        return await self.repo.stuck(("queued", "sending", "unknown"), older_than)

    async def set_opt_out(self, number: str, opted_out: bool, source: str, now: datetime) -> None:
        await self.repo.set_opt_out(number, opted_out, source, now)
        self.opt_outs.forget()

    async def is_opted_out(self, number: str) -> bool:
        """Whether texts to `number` are held back (the SMS webhook's replies): from the
        opted-out numbers held in memory, as `OptOutList` keeps them."""
        return await self.opt_outs.holds(number)

    async def follow_opt_outs(self) -> None:
        """Run every few seconds: other processes' opt-outs are read then."""
        await self.opt_outs.follow()


class OptOutList:
    """The opted-out numbers, held in memory for the SMS webhook, which asks for every text
    (a database read each time cost it about 15% of its throughput). They are read again after
    this process changes one, and when `follow` finds the count of changes moved on (each
    change counts itself in its own write: another web process's STOP, Twilio's 21610 in the
    sender) or the list older than REREAD_AFTER. The database says, not Redis: a change is
    seen whichever process made it, Redis up or not. Those asking while a read is under way
    wait for it."""

    def __init__(self, repo: OutboxRepo) -> None:
        self.repo = repo
        self._held: frozenset[str] | None = None  # None: read them before answering
        self._turn = 0  # moves on whenever the list must be read again
        self._reading: tuple[int, asyncio.Future[frozenset[str]]] | None = None
        self._changes: str | None = None  # the count of changes at the last follow
        self._read_at = 0.0  # monotonic time of the read held

    async def holds(self, number: str) -> bool:
        held = self._held
        if held is None:
            held = await self._read()
        return number in held

    def forget(self) -> None:
        self._held = None
        self._turn += 1

    async def follow(self) -> None:
        changes = await self.repo.opt_outs_changed()
        if changes != self._changes or time.monotonic() - self._read_at > REREAD_AFTER:
            self._changes = changes  # taken before the next read: one after it shows next time
            self.forget()

    async def _read(self) -> frozenset[str]:
        turn = self._turn
        if self._reading is None or self._reading[0] != turn:
            reading = asyncio.ensure_future(self._load(turn))
            self._reading = (turn, reading)
            reading.add_done_callback(self._done)
        # Shielded: one caller giving up does not end the read the others wait for.
        return await asyncio.shield(self._reading[1])

    async def _load(self, turn: int) -> frozenset[str]:
        numbers = frozenset(await self.repo.opted_out_numbers())
        if turn == self._turn:  # no change was made meanwhile: keep them
            self._held, self._read_at = numbers, time.monotonic()
        return numbers

    def _done(self, reading: asyncio.Future[frozenset[str]]) -> None:
        if self._reading is not None and self._reading[1] is reading:
            self._reading = None  # a failed read is not waited on again
