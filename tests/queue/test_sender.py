"""Outbound texts: the real twilio client against a local fake of Twilio's API.

At most one SMS per outbox row, whatever the provider does; nothing is dropped silently."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestServer

from hotline.channels.twilio_rest import TwilioProvider
from hotline.queue import keys
from hotline.queue.sender import Sender, enqueue
from hotline.service.outbox import NO_PROVIDER, Outbox
from hotline.service.settings import Twilio
from hotline.service.store import Store
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.helpers import Clock

TO = "+8613900000009"
CALLBACK = "https://hotline.example.org/sms/twilio/status"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    store = await Store.open(tmp_path / "db.sqlite3")
    yield Outbox(store)
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))


def twilio(base: str, sender: str = "+8657300000000") -> Twilio:
    return Twilio(ACCOUNT_SID, AUTH_TOKEN, sender, base)


@pytest.fixture
async def provider(fake: tuple[FakeTwilio, str]) -> AsyncIterator[TwilioProvider]:
    p = TwilioProvider(twilio(fake[1]), CALLBACK, timeout=0.5)
    yield p
    await p.close()


def sender(
    client: redis.Redis, outbox: Outbox, provider: TwilioProvider | None, clock: Clock
) -> Sender:
    return Sender(
        client, outbox, provider, clock, consumer="s1", settle_after=timedelta(seconds=60)
    )


async def test_a_queued_text_is_sent_once_with_a_status_callback(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    twilio_fake, _ = fake
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "你好", clock())
    again = await enqueue(redis_client, outbox, "t:1", TO, "你好", clock())
    assert again == item_id  # the same purpose queues nothing new
    assert await sender(redis_client, outbox, provider, clock).run_burst() == 1
    item = await outbox.get(item_id)
    assert item is not None
    assert item.status == "queued"  # Twilio's own "queued": accepted by Twilio
    assert item.provider_sid == twilio_fake.messages[0]["sid"]
    assert len(twilio_fake.messages) == 1
    sent = twilio_fake.requests[0]
    assert sent["To"] == TO and sent["Body"] == "你好" and sent["From"] == "+8657300000000"
    assert sent["StatusCallback"] == CALLBACK
    assert await redis_client.xlen(keys.OUTBOUND_STREAM) == 0


async def test_messaging_service_sender(
    redis_client: redis.Redis, outbox: Outbox, fake: tuple[FakeTwilio, str], clock: Clock
) -> None:
    p = TwilioProvider(twilio(fake[1], sender="MG" + "2" * 32), None)
    try:
        await enqueue(redis_client, outbox, "t:1", TO, "hi", clock())
        await sender(redis_client, outbox, p, clock).run_burst()
    finally:
        await p.close()
    request = fake[0].requests[0]
    assert request["MessagingServiceSid"] == "MG" + "2" * 32
    assert "From" not in request and "StatusCallback" not in request


async def test_a_timeout_is_reconciled_not_resent(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    twilio_fake, _ = fake
    twilio_fake.plan = ["timeout"]
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "may have gone", clock())
    s = sender(redis_client, outbox, provider, clock)
    await s.run_burst()
    item = await outbox.get(item_id)
    assert item is not None and item.status == "unknown"
    clock.now += timedelta(minutes=2)
    await s.sweep()
    item = await outbox.get(item_id)
    assert item is not None
    assert item.status == "queued" and item.provider_sid == twilio_fake.messages[0]["sid"]
    assert len(twilio_fake.messages) == 1  # found in Twilio's list: never sent twice
    assert len(twilio_fake.requests) == 1


async def test_a_500_that_sent_nothing_is_sent_again_after_reconciling(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    twilio_fake, _ = fake
    twilio_fake.plan = ["500"]
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "retry me", clock())
    s = sender(redis_client, outbox, provider, clock)
    await s.run_burst()
    assert (await outbox.get(item_id)).status == "unknown"  # type: ignore[union-attr]
    await s.sweep()  # too early: left alone
    assert len(twilio_fake.requests) == 1
    clock.now += timedelta(minutes=2)
    await s.sweep()
    item = await outbox.get(item_id)
    assert item is not None and item.status == "queued" and item.provider_sid
    assert len(twilio_fake.messages) == 1 and item.attempts == 2


async def test_a_500_after_storing_is_found_not_resent(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    twilio_fake, _ = fake
    twilio_fake.plan = ["500-stored"]
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "stored anyway", clock())
    s = sender(redis_client, outbox, provider, clock)
    await s.run_burst()
    clock.now += timedelta(minutes=2)
    await s.sweep()
    assert len(twilio_fake.messages) == 1
    assert (await outbox.get(item_id)).provider_sid == twilio_fake.messages[0]["sid"]  # type: ignore[union-attr]


async def test_recipient_opted_out_at_twilio(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    twilio_fake, _ = fake
    twilio_fake.plan = [(400, 21610)]
    first = await enqueue(redis_client, outbox, "t:1", TO, "one", clock())
    s = sender(redis_client, outbox, provider, clock)
    await s.run_burst()
    item = await outbox.get(first)
    assert item is not None and item.status == "failed" and item.error_code == 21610
    assert await outbox.is_opted_out(TO)
    second = await enqueue(redis_client, outbox, "t:2", TO, "two", clock())
    await s.run_burst()
    assert (await outbox.get(second)).status == "opted-out"  # type: ignore[union-attr]
    assert len(twilio_fake.requests) == 1  # nothing more was even tried


async def test_other_refusals_fail_without_opting_out(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    fake[0].plan = [(400, 21211)]
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "x", clock())
    await sender(redis_client, outbox, provider, clock).run_burst()
    item = await outbox.get(item_id)
    assert item is not None and item.status == "failed" and item.error_code == 21211
    assert not await outbox.is_opted_out(TO)


async def test_without_a_provider_texts_stay_visible_as_not_sent(
    redis_client: redis.Redis, outbox: Outbox, clock: Clock
) -> None:
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "x", clock())
    await sender(redis_client, outbox, None, clock).run_burst()
    item = await outbox.get(item_id)
    assert item is not None
    assert item.status == "not-sent" and item.error_message == NO_PROVIDER


async def test_a_lost_stream_entry_is_picked_up_by_the_sweep(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    fake: tuple[FakeTwilio, str],
    clock: Clock,
) -> None:
    item_id, _ = await outbox.add("t:1", TO, "orphan", clock())  # row written, no entry
    s = sender(redis_client, outbox, provider, clock)
    await s.run_burst()
    assert len(fake[0].requests) == 0  # too fresh to be called lost
    clock.now += timedelta(minutes=2)
    await s.run_burst()
    assert len(fake[0].messages) == 1
    assert (await outbox.get(item_id)).provider_sid  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("reports", "final"),
    [
        (["sent", "delivered"], "delivered"),
        (["delivered", "sent"], "delivered"),  # late callback never moves it back
        (["sending", "sent", "queued"], "sent"),
        (["undelivered", "delivered"], "undelivered"),
        (["weird-new-status"], "sent"),
    ],
)
async def test_status_callbacks_only_move_forward(
    redis_client: redis.Redis,
    outbox: Outbox,
    provider: TwilioProvider,
    clock: Clock,
    reports: list[str],
    final: str,
) -> None:
    item_id = await enqueue(redis_client, outbox, "t:1", TO, "x", clock())
    await sender(redis_client, outbox, provider, clock).run_burst()
    item = await outbox.get(item_id)
    assert item is not None and item.provider_sid
    for status in reports:
        await outbox.apply_callback(item.provider_sid, status, clock())
    assert (await outbox.get(item_id)).status == final  # type: ignore[union-attr]
