"""Redis memory does not grow with the number of requests ever taken: 50,000 intakes routed
into a real SQLite store leave Redis where 10,000 left it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.intake import IntakeQueue
from hotline.queue.router import RouterConsumer
from hotline.service.cases import Intake
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.routing import RoutingPolicy
from hotline.service.store import Store

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
POLICY = RoutingPolicy(load_config(demo_config_path()))
WINDOW = timedelta(seconds=1)  # the idempotency window, short so that the test sees it pass


async def policy() -> RoutingPolicy:
    return POLICY


async def used_memory(client: redis.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def settled(client: redis.Redis) -> int:
    """Redis memory once every intake is routed and the idempotency keys have expired."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = await client.xlen(keys.INTAKE_STREAM) + await client.hlen(keys.UNROUTED_CODES)
        remembered = [k async for k in client.scan_iter(keys.intake_key("*"), count=1000)]
        if not left and not remembered:
            return await used_memory(client)
        await asyncio.sleep(0.2)
    raise AssertionError(f"not settled: {left} unrouted, {len(remembered)} keys remembered")


async def test_redis_memory_stays_flat_over_50k_intakes(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/hotline.db")
    await store.accounts.sync(POLICY.config.members)
    queue = IntakeQueue(redis_client, tmp_path / "spool", idempotency_window=WINDOW)
    router = RouterConsumer(redis_client, store.cases, policy, lambda: NOW, block_ms=100)
    stop = asyncio.Event()
    routing = asyncio.create_task(router.run(stop))
    text = "厂区东门路灯不亮，夜班工人出入不便。" * 4  # a request of typical length

    async def submit(first: int, count: int) -> None:
        for start in range(first, first + count, 50):
            batch = [
                Intake(key=f"web:{n}", channel="web", text=text, received_at=NOW, language="zh-CN")
                for n in range(start, min(start + 50, first + count))
            ]
            answers = await asyncio.gather(*(queue.submit(i) for i in batch))
            assert all(a.new and not a.spooled for a in answers)

    try:
        await submit(0, 10_000)
        after_10k = await settled(redis_client)
        await submit(10_000, 40_000)
        after_50k = await settled(redis_client)
    finally:
        stop.set()
        await routing
        await store.close()
    assert await store_count(tmp_path) == 50_000
    # The code filter is a fixed 4 MiB from the first code; nothing else is left behind.
    assert after_50k - after_10k < 256 * 1024, (after_10k, after_50k)


async def store_count(tmp_path: Path) -> int:
    store = await Store.open(f"sqlite:///{tmp_path}/hotline.db")
    try:
        return await store.cases.count()
    finally:
        await store.close()
