"""Intake producer: code reservation, idempotency under concurrency, the disk spool."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.intake import IntakeQueue
from hotline.service.cases import Intake
from tests.helpers import entries

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def intake(key: str) -> Intake:
    return Intake(key=key, channel="sms", text="hello", received_at=NOW, language="en")


async def test_same_key_concurrently_gives_one_code_and_one_entry(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path / "spool")
    results = await asyncio.gather(*(queue.submit(intake("sms:SM1")) for _ in range(20)))
    assert len({r.code for r in results}) == 1
    assert sum(r.new for r in results) == 1
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 1


async def test_codes_are_reserved_and_unique(redis_client: redis.Redis, tmp_path: Path) -> None:
    queue = IntakeQueue(redis_client, tmp_path / "spool")
    codes = [(await queue.submit(intake(f"sms:SM{i}"))).code for i in range(200)]
    assert len(set(codes)) == 200
    assert await redis_client.hlen(keys.CODES) == 200
    assert await queue.received_at(codes[0]) == "2026-11-24T03:00:00.000000Z"


async def test_unreachable_redis_spools_to_disk_then_drains(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    dead = redis.Redis.from_url(f"unix://{tmp_path}/nothing.sock", socket_connect_timeout=0.2)
    down = IntakeQueue(dead, tmp_path / "spool")
    spooled = await down.submit(intake("sms:SM9"))
    again = await down.submit(intake("sms:SM9"))  # Twilio retrying while Redis is down
    await dead.aclose()
    assert spooled.spooled and again.code == spooled.code
    assert len(down.spooled()) == 1

    up = IntakeQueue(redis_client, tmp_path / "spool")
    assert await up.drain_spool() == 1
    assert up.spooled() == []
    # The code the submitter was given is the code the case gets.
    assert await up.received_at(spooled.code) is not None
    queued = await entries(redis_client, keys.INTAKE_STREAM)
    assert queued[0][1][b"code"].decode() == spooled.code
    # And the key maps to it, so a late retry gets the same code.
    assert (await up.submit(intake("sms:SM9"))).code == spooled.code


async def test_lost_reservations_are_restored(redis_client: redis.Redis, tmp_path: Path) -> None:
    queue = IntakeQueue(redis_client, tmp_path / "spool")
    rows = [("AAAAAAA", "sms:SM1", "2026-11-24T03:00:00.000000Z")]
    assert await queue.restore_reservations(rows) == 1
    assert await queue.restore_reservations(rows) == 0
    assert (await queue.submit(intake("sms:SM1"))).code == "AAAAAAA"


async def test_a_retry_right_after_redis_returns_keeps_the_spooled_code(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    dead = redis.Redis.from_url(f"unix://{tmp_path}/nothing.sock", socket_connect_timeout=0.2)
    down = IntakeQueue(dead, tmp_path / "spool")
    spooled = await down.submit(intake("web:idem-1"))
    assert await down.received_at(spooled.code) == "2026-11-24T03:00:00.000000Z"  # from the spool
    await down.end_thread("+8613900000001", spooled.code)  # no threading while down, no error
    await dead.aclose()

    up = IntakeQueue(redis_client, tmp_path / "spool")
    retried = await up.submit(intake("web:idem-1"))  # before the drainer ran
    assert retried.code == spooled.code and not retried.spooled
    assert up.spooled() == []
    assert await up.drain_spool() == 0
    queued = await entries(redis_client, keys.INTAKE_STREAM)
    assert [e[1][b"code"].decode() for e in queued] == [spooled.code]


async def test_a_finished_case_ends_only_its_own_thread(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    phone, window = "+8613900000007", timedelta(hours=4)

    def text(key: str) -> Intake:
        return Intake(key=key, channel="sms", text="路灯", received_at=NOW, language="zh-CN",
                      phone=phone)  # fmt: skip

    first = await queue.submit(text("sms:SM1"), thread_within=window)
    await queue.end_thread(phone, "ZZZZZZZ")  # another case finished: the thread stays
    joined = await queue.submit(text("sms:SM2"), thread_within=window)
    assert joined.follow_up and joined.code == first.code
    await queue.end_thread(phone, first.code)  # its own case finished: the thread ends
    fresh = await queue.submit(text("sms:SM3"), thread_within=window)
    assert fresh.new and not fresh.follow_up and fresh.code != first.code
