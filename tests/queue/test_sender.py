"""Outbound texts: the real twilio client against a local fake of Twilio's API.

At most one SMS per outbox row, whatever the provider does; nothing is dropped silently."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis

from hotline.channels import twilio_rest
from hotline.channels.twilio_rest import TwilioProvider
from hotline.queue import keys
from hotline.queue.sender import Sender
from hotline.queue.signals import RedisSignals
from hotline.service.delivery import Delivery
from hotline.service.outbox import NO_PROVIDER, Outbox
from hotline.service.ports import Listing, Sent, SmsProvider
from hotline.service.settings import Twilio
from hotline.service.store import Store
from hotline.service.store.outbox import OutboxItem
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.helpers import Clock

TO = "+8613900000009"
CALLBACK = "https://hotline.example.org/sms/twilio/status"
SETTLE = timedelta(minutes=1)  # how long the sweep leaves an item alone
LATER = timedelta(minutes=2)


@dataclass
class Rig:
    """The real twilio client against the fake, a real outbox, Redis and a settable clock."""

    redis: redis.Redis
    outbox: Outbox
    provider: TwilioProvider
    fake: FakeTwilio
    base: str
    clock: Clock

    def sender(self, provider: SmsProvider | str | None = "twilio") -> Sender:
        chosen = self.provider if provider == "twilio" else provider
        assert not isinstance(chosen, str)
        delivery = Delivery(self.outbox, chosen, self.clock, settle_after=SETTLE)
        return Sender(self.redis, delivery, consumer="s1")

    async def enqueue(self, key: str, body: str) -> int:
        return await self.outbox.enqueue(key, TO, body, self.clock())

    async def item(self, item_id: int) -> OutboxItem:
        item = await self.outbox.get(item_id)
        assert item is not None
        return item


@pytest.fixture
async def rig(
    db_url: str, redis_client: redis.Redis, fake_twilio: tuple[FakeTwilio, str]
) -> AsyncIterator[Rig]:
    store = await Store.open(db_url)
    provider = TwilioProvider(twilio(fake_twilio[1]), CALLBACK, timeout=0.5)
    clock = Clock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))
    yield Rig(
        redis_client,
        Outbox(store.outbox, RedisSignals(redis_client)),
        provider,
        *fake_twilio,
        clock,
    )
    await provider.close()
    await store.close()


def twilio(base: str, sender: str = "+8657300000000") -> Twilio:
    return Twilio(ACCOUNT_SID, AUTH_TOKEN, sender, base)


async def test_a_queued_text_is_sent_once_with_a_status_callback(rig: Rig) -> None:
    item_id = await rig.enqueue("t:1", "你好")
    assert await rig.enqueue("t:1", "你好") == item_id  # the same purpose queues nothing new
    assert await rig.sender().run_burst() == 1
    item = await rig.item(item_id)
    assert item.status == "queued-provider"  # Twilio's own "queued": accepted by Twilio
    assert item.provider_sid == rig.fake.messages[0]["sid"]
    assert len(rig.fake.messages) == 1
    sent = rig.fake.requests[0]
    assert sent["To"] == TO and sent["Body"] == "你好" and sent["From"] == "+8657300000000"
    assert sent["StatusCallback"] == f"{CALLBACK}?outbox={item_id}"  # its reports name the row
    assert await rig.redis.xlen(keys.OUTBOUND_STREAM) == 0


async def test_messaging_service_sender(rig: Rig) -> None:
    provider = TwilioProvider(twilio(rig.base, sender="MG" + "2" * 32), None)
    try:
        await rig.enqueue("t:1", "hi")
        await rig.sender(provider).run_burst()
    finally:
        await provider.close()
    request = rig.fake.requests[0]
    assert request["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in request and "StatusCallback" not in request


async def test_a_text_the_provider_queued_is_never_sent_again(rig: Rig) -> None:
    """Twilio's first answer is its own "queued". Its status callback may never come (the
    callback URL unreachable): the text stays with the provider, and neither the sweep nor
    its outbound entry read again sends it twice."""
    item_id = await rig.enqueue("t:1", "once")
    sender = rig.sender()
    await sender.run_burst()
    for _ in range(3):
        rig.clock.now += LATER
        await sender.sweep()
    await rig.redis.xadd(keys.OUTBOUND_STREAM, {"id": str(item_id)})  # as if read again
    await sender.run_burst()
    item = await rig.item(item_id)
    assert item.status == "queued-provider" and item.attempts == 1
    assert len(rig.fake.requests) == 1


async def test_a_row_left_queued_with_the_providers_sid_is_never_taken(rig: Rig) -> None:
    """A sender from before migration 0009 stored Twilio's "queued" as ours, with the sid:
    neither its entry read again nor the sweep sends it; the sweep files it as the
    provider's."""
    item_id = await rig.enqueue("t:1", "went already")
    await rig.outbox.repo.db.write(
        lambda db: db.execute(
            "UPDATE outbox SET provider_sid = 'SMold', attempts = 1 WHERE id = :id", {"id": item_id}
        )
    )
    sender = rig.sender()
    await sender.run_burst()
    assert (await rig.item(item_id)).status == "queued"
    rig.clock.now += LATER
    await sender.sweep()
    item = await rig.item(item_id)
    assert (item.status, item.provider_sid, item.attempts) == ("queued-provider", "SMold", 1)
    await sender.sweep()
    assert rig.fake.requests == []


async def test_a_timeout_is_reconciled_not_resent(rig: Rig) -> None:
    rig.fake.plan = ["timeout"]
    item_id = await rig.enqueue("t:1", "may have gone")
    sender = rig.sender()
    await sender.run_burst()
    assert (await rig.item(item_id)).status == "unknown"
    rig.clock.now += LATER
    await sender.sweep()
    item = await rig.item(item_id)
    assert item.status == "queued-provider"
    assert item.provider_sid == rig.fake.messages[0]["sid"]
    rig.clock.now += LATER
    await sender.sweep()
    assert len(rig.fake.messages) == 1  # found in Twilio's list: never sent twice
    assert len(rig.fake.requests) == 1


async def test_a_text_to_a_busy_number_is_found_behind_hundreds_not_resent(rig: Rig) -> None:
    """A member on duty is texted hundreds of times while a send's outcome is unknown: the
    text is read back behind all of them (page after page of Twilio's list), not taken for
    unsent because it is not among the latest hundred."""
    rig.fake.plan = ["timeout"]
    item_id = await rig.enqueue("t:1", "went, then many more")
    sender = rig.sender()
    await sender.run_burst()
    assert (await rig.item(item_id)).status == "unknown"
    for n in range(1500):  # two pages and more of Twilio's list
        rig.fake._store({"To": TO, "Body": f"later {n}", "From": "+8657300000000"}, ACCOUNT_SID)
    rig.clock.now += LATER
    await sender.sweep()
    item = await rig.item(item_id)
    assert item.status == "queued-provider" and item.provider_sid == rig.fake.messages[0]["sid"]
    assert len(rig.fake.requests) == 1 and rig.fake.pages_read == 2


async def test_unknown_texts_to_one_number_are_read_back_once_each_finding_its_own(
    rig: Rig,
) -> None:
    """After an outage many rows to the member on duty wait unknown: Twilio's list of the
    number is read back once for all of them (two pages here, not two per row); each row
    takes its own message, identical texts included (the older row the older message)."""
    rig.fake.plan = ["timeout"] * 4
    bodies_sent = ["新诉求 A", "同一条", "同一条", "新诉求 B"]
    ids = [await rig.enqueue(f"t:{n}", body) for n, body in enumerate(bodies_sent)]
    sender = rig.sender()
    await sender.run_burst()
    assert [(await rig.item(i)).status for i in ids] == ["unknown"] * 4
    for n in range(1500):
        rig.fake._store({"To": TO, "Body": f"later {n}", "From": "+8657300000000"}, ACCOUNT_SID)
    rig.clock.now += LATER
    await sender.sweep()
    assert rig.fake.pages_read == 2 and len(rig.fake.requests) == 4  # none sent again
    # Each row has a message of its own text (the four were sent at once, in any order).
    bodies = {m["sid"]: m["body"] for m in rig.fake.messages}
    sids = [(await rig.item(i)).provider_sid for i in ids]
    assert len(set(sids)) == 4 and [bodies.get(sid or "") for sid in sids] == bodies_sent


async def test_an_identical_text_sent_before_is_not_taken_for_a_lost_one(rig: Rig) -> None:
    """Two identical texts to one number (two summaries alike): the first went and has its
    sid; the second was taken by a worker that died before sending. Twilio's list holds
    the first only: it is the first row's, so the second is sent, not marked sent by it
    (and no two rows ever hold one sid)."""
    first = await rig.enqueue("t:1", "本班次无新诉求")
    sender = rig.sender()
    await sender.run_burst()
    second = await rig.enqueue("t:2", "本班次无新诉求")
    await rig.outbox.take([second], rig.clock(), can_send=True)  # the worker then died
    rig.clock.now += LATER
    await sender.sweep()
    one, two = await rig.item(first), await rig.item(second)
    assert len(rig.fake.requests) == 2
    assert two.status == "queued-provider" and two.provider_sid == rig.fake.messages[1]["sid"]
    assert one.provider_sid == rig.fake.messages[0]["sid"]


async def test_a_number_texted_past_what_is_read_back_is_left_unknown_not_resent(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More texts to the number since than are read back: whether the row's went cannot
    be told, so it stays unknown (looked at again by the next sweep), never sent blind."""
    monkeypatch.setattr(twilio_rest, "READ_BACK_MAX", 50)
    rig.fake.plan = ["timeout"]
    item_id = await rig.enqueue("t:1", "lost among many")
    sender = rig.sender()
    await sender.run_burst()
    for n in range(60):
        rig.fake._store({"To": TO, "Body": f"later {n}", "From": "+8657300000000"}, ACCOUNT_SID)
    rig.clock.now += LATER
    await sender.sweep()
    item = await rig.item(item_id)
    assert (item.status, item.provider_sid, len(rig.fake.requests)) == ("unknown", None, 1)


class Paused(Outbox):
    """An outbox whose claim check waits for `go` first: a worker stopped (SIGSTOP, a long
    pause) between taking its rows and sending them."""

    def __init__(self, outbox: Outbox, go: asyncio.Event) -> None:
        super().__init__(outbox.repo, outbox.signals)
        self.go = go
        self.taken = asyncio.Event()  # its rows taken: about to send them

    async def still_taken(self, item: OutboxItem) -> bool:
        self.taken.set()
        await self.go.wait()
        return await super().still_taken(item)


async def test_a_worker_paused_after_taking_its_rows_sends_none_of_them(rig: Rig) -> None:
    """Paused past the sweep's wait, its rows are found unsent and sent by another worker;
    resumed, it sends none of them again and settles none."""
    item_id = await rig.enqueue("t:1", "only once")
    go = asyncio.Event()
    outbox = Paused(rig.outbox, go)
    paused = Delivery(outbox, rig.provider, rig.clock, settle_after=SETTLE)
    resuming = asyncio.create_task(paused.deliver(item_id))
    await asyncio.wait_for(outbox.taken.wait(), 5)
    assert (await rig.item(item_id)).status == "sending"
    rig.clock.now += LATER
    await rig.sender().sweep()  # asks Twilio: not there; sent again by this worker
    assert len(rig.fake.requests) == 1
    go.set()
    await resuming
    item = await rig.item(item_id)
    assert len(rig.fake.requests) == 1  # the paused worker sent nothing
    assert (item.status, item.attempts) == ("queued-provider", 2)
    assert item.provider_sid == rig.fake.messages[0]["sid"]


class Held(TwilioProvider):
    """The real provider, but its list read back (`sent_to`) or its send waits for `go`."""

    def __init__(self, provider: TwilioProvider, go: asyncio.Event, *, empty: bool) -> None:
        self.__dict__.update(provider.__dict__)
        self.go, self.empty = go, empty
        self.waiting = asyncio.Event()

    async def sent_to(self, to: str, since: datetime) -> Listing:
        if not self.empty:
            return await super().sent_to(to, since)
        self.waiting.set()
        await self.go.wait()
        return Listing([], since)  # read back slowly, and not there

    async def send(self, to: str, body: str, *, ref: int) -> Sent:
        if self.empty:
            return await super().send(to, body, ref=ref)
        self.waiting.set()
        await self.go.wait()
        return await super().send(to, body, ref=ref)


async def test_of_two_sweeps_at_once_one_requeues_and_sends(rig: Rig) -> None:
    """A worker died holding a row. Two workers' sweeps see it stuck: one requeues it and
    is sending it while the other is still reading Twilio's list back; that one's requeue,
    of a row taken again since, is refused, and it sends nothing."""
    item_id = await rig.enqueue("t:1", "one of two sweeps")
    assert [i.id for i in await rig.outbox.take([item_id], rig.clock(), can_send=True)] == [
        item_id
    ]  # taken by a worker that then died
    rig.clock.now += LATER
    read_back, sending = asyncio.Event(), asyncio.Event()
    slow_reader = Held(rig.provider, read_back, empty=True)
    slow_sender = Held(rig.provider, sending, empty=False)
    behind = asyncio.create_task(
        Delivery(rig.outbox, slow_reader, rig.clock, settle_after=SETTLE).sweep()
    )
    await asyncio.wait_for(slow_reader.waiting.wait(), 5)  # it saw the row stuck
    ahead = asyncio.create_task(
        Delivery(rig.outbox, slow_sender, rig.clock, settle_after=SETTLE).sweep()
    )
    await asyncio.wait_for(slow_sender.waiting.wait(), 5)  # requeued, taken, being sent
    read_back.set()
    await behind
    sending.set()
    await ahead
    item = await rig.item(item_id)
    assert len(rig.fake.requests) == 1
    assert (item.status, item.attempts) == ("queued-provider", 2)


async def test_a_500_that_sent_nothing_is_sent_again_after_reconciling(rig: Rig) -> None:
    rig.fake.plan = ["500"]
    item_id = await rig.enqueue("t:1", "retry me")
    sender = rig.sender()
    await sender.run_burst()
    assert (await rig.item(item_id)).status == "unknown"
    await sender.sweep()  # too early: left alone
    assert len(rig.fake.requests) == 1
    rig.clock.now += LATER
    await sender.sweep()
    item = await rig.item(item_id)
    assert item.status == "queued-provider" and item.provider_sid and item.attempts == 2
    assert len(rig.fake.messages) == 1


async def test_a_500_after_storing_is_found_not_resent(rig: Rig) -> None:
    rig.fake.plan = ["500-stored"]
    item_id = await rig.enqueue("t:1", "stored anyway")
    sender = rig.sender()
    await sender.run_burst()
    rig.clock.now += LATER
    await sender.sweep()
    assert len(rig.fake.messages) == 1
    assert (await rig.item(item_id)).provider_sid == rig.fake.messages[0]["sid"]


async def test_recipient_opted_out_at_twilio(rig: Rig) -> None:
    rig.fake.plan = [(400, 21610)]
    first = await rig.enqueue("t:1", "one")
    sender = rig.sender()
    await sender.run_burst()
    item = await rig.item(first)
    assert item.status == "failed" and item.error_code == 21610
    assert await rig.outbox.is_opted_out(TO)
    second = await rig.enqueue("t:2", "two")
    await sender.run_burst()
    assert (await rig.item(second)).status == "opted-out"
    assert len(rig.fake.requests) == 1  # nothing more was even tried


async def test_other_refusals_fail_without_opting_out(rig: Rig) -> None:
    rig.fake.plan = [(400, 21211)]
    item_id = await rig.enqueue("t:1", "x")
    await rig.sender().run_burst()
    item = await rig.item(item_id)
    assert item.status == "failed" and item.error_code == 21211
    assert not await rig.outbox.is_opted_out(TO)


async def test_without_a_provider_texts_stay_visible_as_not_sent(rig: Rig) -> None:
    item_id = await rig.enqueue("t:1", "x")
    await rig.sender(None).run_burst()
    item = await rig.item(item_id)
    assert item.status == "not-sent" and item.error_message == NO_PROVIDER
    assert rig.fake.requests == []


async def test_a_lost_stream_entry_is_picked_up_by_the_sweep(rig: Rig) -> None:
    item_id, _ = await rig.outbox.repo.add("t:1", TO, "orphan", rig.clock())  # row, no entry
    sender = rig.sender()
    await sender.run_burst()
    assert len(rig.fake.requests) == 0  # too fresh to be called lost
    rig.clock.now += LATER
    await sender.run_burst()
    assert len(rig.fake.messages) == 1
    assert (await rig.item(item_id)).provider_sid


async def test_many_lost_entries_are_taken_together(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an outage hundreds of rows may have lost their entries: the sweep takes them in
    one write and sends them eight at a time (one by one, a slow provider sent two a
    second)."""
    ids = [(await rig.outbox.repo.add(f"t:{n}", TO, f"orphan {n}", rig.clock()))[0]
           for n in range(20)]  # fmt: skip
    takes: list[int] = []
    take = rig.outbox.take

    async def counted(item_ids: Any, now: datetime, *, can_send: bool) -> list[OutboxItem]:
        takes.append(len(item_ids))
        return await take(item_ids, now, can_send=can_send)

    monkeypatch.setattr(rig.outbox, "take", counted)
    rig.clock.now += LATER
    await rig.sender().sweep()
    assert takes == [20] and len(rig.fake.requests) == 20
    assert all([(await rig.item(i)).provider_sid for i in ids])


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["sent", "delivered"], "delivered"),
        (["delivered", "sent"], "delivered"),  # a late callback never moves it back
        (["sending", "sent", "queued"], "sent"),
        (["undelivered", "delivered"], "undelivered"),
        (["weird-new-status"], "sent"),
    ],
)
async def test_status_callbacks_only_move_forward(rig: Rig, reports: list[str], final: str) -> None:
    item_id = await rig.enqueue("t:1", "x")
    await rig.sender().run_burst()
    sid = (await rig.item(item_id)).provider_sid
    assert sid
    for status in reports:
        await rig.outbox.apply_callback(sid, status, rig.clock())
    assert (await rig.item(item_id)).status == final


async def test_a_malformed_outbound_entry_is_dead_lettered_alone(rig: Rig) -> None:
    await rig.redis.xadd(keys.OUTBOUND_STREAM, {"id": "not-a-number"})
    item_id = await rig.enqueue("t:1", "still goes")
    assert await rig.sender().run_burst() == 2
    assert (await rig.item(item_id)).provider_sid == rig.fake.messages[0]["sid"]
    dead: Any = await rig.redis.xrange(keys.OUTBOUND_DEAD)
    assert len(dead) == 1 and dead[0][1][b"reason"] == b"not an outbox row id"
    assert dead[0][1][b"id"] == b"not-a-number"  # its own field, as it was
    assert dead[0][1][b"entry"].count(b"-") == 1  # where it stood in the stream


@pytest.mark.parametrize("named", ["", "1,", "1,x", "１"])
async def test_an_entry_naming_rows_badly_is_dead_lettered_alone(rig: Rig, named: str) -> None:
    item_id = await rig.enqueue("t:1", "still goes")
    await rig.redis.xadd(keys.OUTBOUND_STREAM, {"ids": named})
    assert await rig.sender().run_burst() == 2
    assert (await rig.item(item_id)).provider_sid == rig.fake.messages[0]["sid"]
    dead: Any = await rig.redis.xrange(keys.OUTBOUND_DEAD)
    assert len(dead) == 1 and dead[0][1][b"reason"] == b"not an outbox row id"


async def test_an_entry_naming_many_rows_sends_each_once_a_few_hundred_at_a_time(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The router names a batch's texts in one entry; the sender takes them in chunks."""
    monkeypatch.setattr("hotline.service.delivery.TAKEN_AT_ONCE", 3)
    ids = [
        (await rig.outbox.repo.add(f"t:{i}", f"+86139000002{i:02d}", f"t{i}", rig.clock()))[0]
        for i in range(7)
    ]
    assert await rig.redis.xlen(keys.OUTBOUND_STREAM) == 0  # queued without an entry
    await rig.redis.xadd(keys.OUTBOUND_STREAM, {"ids": ",".join(map(str, ids + ids[:2]))})
    writes = CountedWrites(rig.outbox)
    assert await rig.sender().run_burst() == 1
    assert writes.count == 2 * 3  # taken and settled, 3 + 3 + 3 (the first two named twice)
    assert sorted(m["to"] for m in rig.fake.messages) == [f"+86139000002{i:02d}" for i in range(7)]
    assert [(await rig.item(i)).attempts for i in ids] == [1] * 7
    assert await rig.redis.xlen(keys.OUTBOUND_STREAM) == 0


class CountedWrites:
    """Counts the write transactions of the outbox's database."""

    def __init__(self, outbox: Outbox) -> None:
        self.count = 0
        db = outbox.repo.db
        write = db.write

        async def counted(fn: Any, **options: Any) -> Any:
            self.count += 1
            return await write(fn, **options)

        db.write = counted  # type: ignore[method-assign]


async def test_a_read_of_texts_is_taken_in_one_write_and_settled_in_one_more(rig: Rig) -> None:
    await rig.outbox.set_opt_out("+8613900000100", True, "keyword", rig.clock())
    ids = [
        await rig.outbox.enqueue(f"t:{i}", f"+86139000001{i:02d}", f"text {i}", rig.clock())
        for i in range(12)
    ]
    writes = CountedWrites(rig.outbox)
    assert await rig.sender().run_burst() == 12
    assert writes.count == 2
    items = [await rig.item(i) for i in ids]
    assert items[0].status == "opted-out" and items[0].provider_sid is None
    assert all(item.status == "queued-provider" and item.attempts == 1 for item in items[1:])
    sids = {m["sid"] for m in rig.fake.messages}
    assert {item.provider_sid for item in items[1:]} == sids and len(sids) == 11
    assert sorted(m["to"] for m in rig.fake.messages) == [
        f"+86139000001{i:02d}" for i in range(1, 12)
    ]
    assert await rig.redis.xlen(keys.OUTBOUND_STREAM) == 0


async def test_without_a_provider_a_read_of_texts_settles_in_one_write(rig: Rig) -> None:
    ids = [await rig.enqueue(f"t:{i}", "x") for i in range(5)]
    writes = CountedWrites(rig.outbox)
    assert await rig.sender(None).run_burst() == 5
    assert writes.count == 1
    assert {(await rig.item(i)).status for i in ids} == {"not-sent"}
