"""Intake producer: code reservation, idempotency under concurrency, the disk spool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from hotline.queue import keys
from hotline.queue.intake import NO_FREE_CODE, IntakeQueue, KeyReused, filter_bits
from hotline.service.cases import Intake, code_for
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
    assert await redis_client.hlen(keys.UNROUTED_CODES) == 200
    assert await queue.received_at(codes[0]) == "2026-11-24T03:00:00.000000Z"
    # The filter holds each code's bits, computed alike in the script and in Python.
    for code in codes:
        bits = filter_bits(code)
        assert all([await redis_client.getbit(keys.CODE_FILTER, bit) for bit in bits])
    assert await redis_client.strlen(keys.CODE_FILTER) <= keys.CODE_FILTER_BITS // 8


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


async def test_a_key_spooled_while_redis_was_down_keeps_its_request(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """An API Idempotency-Key given while Redis was down: another request under it is told
    so while Redis is down, after it is back and after the spool is pushed (it got the first
    one's code and was lost before); a retry of the same request never is."""
    dead = redis.Redis.from_url(f"unix://{tmp_path}/nothing.sock", socket_connect_timeout=0.2)
    down = IntakeQueue(dead, tmp_path / "spool")
    first = intake("api:7:key-1")
    assert await down.same_request(first.key, "digest-a")  # Redis cannot say: taken
    spooled = await down.submit(first, fingerprint="digest-a")
    assert spooled.spooled
    assert not await down.same_request(first.key, "digest-b")
    assert await down.same_request(first.key, "digest-a")
    # Two at once, both past same_request before either was spooled: the second is refused.
    with pytest.raises(KeyReused):
        await down.submit(first, fingerprint="digest-b")
    await dead.aclose()
    up = IntakeQueue(redis_client, tmp_path / "spool")
    assert not await up.same_request(first.key, "digest-b")  # back, not pushed yet
    assert await up.drain_spool() == 1
    assert not await up.same_request(first.key, "digest-b")  # pushed: Redis knows it
    assert await up.same_request(first.key, "digest-a")
    assert (await up.submit(first, fingerprint="digest-a")).code == spooled.code


async def chunks(*codes: str) -> AsyncIterator[list[str]]:
    yield list(codes)


async def test_a_new_redis_gets_the_filter_of_every_stored_code(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    await redis_client.flushall()  # a new Redis: no filter, and no mark that it was built
    queue = IntakeQueue(redis_client, tmp_path / "spool", secret="s")
    taken = code_for(b"s", "sms:SM1", 0)  # the code this intake would get first
    assert not await queue.has_code_filter()
    refused = await queue.submit(intake("sms:SM0"))  # no code is issued unchecked: spooled
    assert refused.spooled and not await redis_client.exists(keys.CODE_FILTER)
    assert await queue.rebuild_code_filter(chunks(taken, "AAAAAAA")) == 2
    assert await queue.has_code_filter()
    got = await queue.submit(intake("sms:SM1"))
    assert got.new and got.code == code_for(b"s", "sms:SM1", 1)  # the stored code is skipped
    # A second rebuild (another process starting on the same new Redis) keeps what was added.
    await queue.rebuild_code_filter(chunks())
    assert all([await redis_client.getbit(keys.CODE_FILTER, b) for b in filter_bits(got.code)])


async def test_the_later_candidates_are_tried_once_the_first_two_are_taken(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Two candidates go with each intake; the other six only when both are taken, in the
    same order, and only eight taken refuse the intake (spooling it would not help)."""
    await redis_client.flushall()
    queue = IntakeQueue(redis_client, tmp_path / "spool", secret="s")
    first_five = [code_for(b"s", "sms:SM1", n) for n in range(5)]
    await queue.rebuild_code_filter(chunks(*first_five))
    got = await queue.submit(intake("sms:SM1"))
    assert got.new and got.code == code_for(b"s", "sms:SM1", 5)
    assert (await queue.submit(intake("sms:SM1"))).code == got.code  # remembered as usual
    queued = await entries(redis_client, keys.INTAKE_STREAM)
    assert [e[b"code"].decode() for _, e in queued] == [got.code]  # appended once

    await queue.rebuild_code_filter(chunks(*(code_for(b"s", "sms:SM2", n) for n in range(8))))
    with pytest.raises(ResponseError, match=NO_FREE_CODE):
        await queue.submit(intake("sms:SM2"))
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 1 and queue.spooled() == []


async def test_the_old_layout_is_folded_into_the_filter_and_dropped(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A Redis from before the filter: every code in one hash, every intake key in another,
    and an intake still in the stream."""
    await redis_client.delete(keys.CODE_FILTER_READY)
    queue = IntakeQueue(redis_client, tmp_path / "spool", secret="s")
    old = code_for(b"s", "web:old", 0)
    await redis_client.hset(keys.LEGACY_CODES, mapping={old: "2026-11-24T03:00:00.000000Z"})
    await redis_client.hset(keys.LEGACY_INTAKE_KEYS, mapping={"web:old": old})
    at = "2026-11-24T03:00:00.000000Z"
    await redis_client.xadd(
        keys.INTAKE_STREAM, {"kind": "case", "code": "BBBBBBB", "intake": intake("web:b").to_json()}
    )
    assert await queue.rebuild_code_filter(chunks()) == 2
    assert not await redis_client.exists(keys.LEGACY_CODES, keys.LEGACY_INTAKE_KEYS)
    assert await queue.received_at("BBBBBBB") == at  # not routed yet: /track says received
    again = await queue.submit(intake("web:old2"))
    assert again.code != old
    assert all([await redis_client.getbit(keys.CODE_FILTER, b) for b in filter_bits(old)])


async def test_an_intake_key_is_remembered_for_its_window_only(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path / "spool", idempotency_window=timedelta(seconds=1))
    first = await queue.submit(intake("sms:SM1"))
    assert (await queue.submit(intake("sms:SM1"))).code == first.code
    ttl = await redis_client.pttl(keys.intake_key("sms:SM1"))
    assert 0 < ttl <= 1000
    await asyncio.sleep(1.1)
    # Past the window Redis has forgotten the key: the store's unique key catches the retry
    # (tests/queue/test_router.py: stored once, the new code leads to the case).
    late = await queue.submit(intake("sms:SM1"))
    assert late.new and late.code != first.code


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


async def test_a_redis_that_lost_its_data_issues_no_code_until_the_filter_is_rebuilt(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Flushed (or failed over to an empty replica) while the service runs: intake keeps
    answering from the spool, the rebuild puts every stored code back, and the spooled
    intake keeps the code it was given."""
    queue = IntakeQueue(redis_client, tmp_path / "spool", secret="s")
    stored = (await queue.submit(intake("sms:SM1"))).code
    await redis_client.flushall()
    held = await queue.submit(intake("sms:SM2"))
    assert held.spooled and held.code == code_for(b"s", "sms:SM2", 0)
    with pytest.raises(ResponseError, match="FILTERLESS"):  # refused until the rebuild
        await queue.drain_spool()
    assert len(queue.spooled()) == 1
    await queue.rebuild_code_filter(chunks(stored))  # what the spool drainer does first
    assert await queue.drain_spool() == 1
    queued = await entries(redis_client, keys.INTAKE_STREAM)
    assert [e[1][b"code"].decode() for e in queued] == [held.code]  # its own code
    assert all([await redis_client.getbit(keys.CODE_FILTER, b) for b in filter_bits(stored)])
