"""Router drain: requests are queued first, then one `hotline worker` process stores and routes
them (case, events, the member's and the submitter's outbox rows). The rate is taken from the
cases' own `created_at` stamps, first to last, so the worker's start-up is not counted."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import redis.asyncio as redis

from hotline.bench.postgres import database_url, recreate
from hotline.bench.processes import spawn, stop
from hotline.queue.embedded import EmbeddedRedis
from hotline.queue.intake import IntakeQueue
from hotline.service.cases import Intake, from_utc_text, utcnow
from hotline.service.config import demo_config_path
from hotline.service.store import Store

SECRET = "hotline-bench"  # noqa: S105 - a throwaway installation's key
TIMEOUT = 300.0  # seconds a round may take before bench gives up on it
CHUNK = 50  # intakes queued at once


class BenchError(RuntimeError):
    pass


async def _no_codes() -> AsyncIterator[list[str]]:
    yield []


async def _fill(redis_url: str, spool: Path, count: int, round_no: int) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = IntakeQueue(client, spool, SECRET)
    received = utcnow() - timedelta(minutes=1)
    try:
        await queue.rebuild_code_filter(_no_codes())  # the bench's store is empty
        for start in range(0, count, CHUNK):
            await asyncio.gather(
                *(
                    queue.submit(
                        Intake(
                            key=f"bench:{round_no}:{i}",
                            channel="sms" if i % 2 else "web",
                            text=f"压测请求 {i}:厂区路灯不亮,请尽快处理",
                            received_at=received,
                            language="zh-CN",
                            phone=f"+86139{i:08d}",
                            category="infrastructure" if i % 3 else None,
                        )
                    )
                    for i in range(start, min(start + CHUNK, count))
                )
            )
    finally:
        await client.aclose()


async def _stored(store: Store) -> int:
    [row] = await store.fetch("SELECT count(*) AS n FROM cases")
    return int(row["n"])


async def _rate(store: Store) -> float:
    """Cases per second from the first batch's stamp to the last one's: the cases stored
    after the first batch, over that time (a batch's cases share one stamp)."""
    [row] = await store.fetch("SELECT min(created_at) AS first, max(created_at) AS last FROM cases")
    first, last = row["first"], row["last"]
    [count] = await store.fetch(
        "SELECT count(*) AS n FROM cases WHERE created_at > :first", {"first": first}
    )
    later = int(count["n"])
    seconds = (from_utc_text(last) - from_utc_text(first)).total_seconds()
    return later / seconds if seconds > 0 else float("inf")


async def drain_round(
    engine: str, intakes: int, server: str | None, round_no: int, workers: int = 1
) -> float:
    """Cases per second `workers` worker processes stored and routed, on `engine`."""
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        base = Path(tmp)
        redis_server = EmbeddedRedis(base / "redis")
        await asyncio.to_thread(redis_server.start)
        database_name = f"hotline_bench_{os.getpid()}_{round_no}"
        env = os.environ | {
            "HOTLINE_DATA_DIR": str(base / "data"),
            "HOTLINE_REDIS_URL": redis_server.url,
            "HOTLINE_CONFIG": str(demo_config_path()),
            "HOTLINE_SECRET_KEY": SECRET,
        }
        env.pop("HOTLINE_DATABASE_URL", None)
        target: str | Path = base / "data" / "hotline.sqlite3"
        if engine == "postgresql":
            assert server is not None
            await recreate(server, database_name)
            target = env["HOTLINE_DATABASE_URL"] = database_url(server, database_name)
        (base / "data").mkdir()
        running: list[asyncio.subprocess.Process] = []
        store = await Store.open(target)  # migrated here, so the worker starts at once
        try:
            await _fill(redis_server.url, base / "spool", intakes, round_no)
            for _ in range(workers):
                running.append(
                    await spawn(
                        ["-m", "hotline", "worker", "--health-port", "0"], env, base / "worker.log"
                    )
                )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT
            while (stored := await _stored(store)) < intakes:
                died = any(worker.returncode is not None for worker in running)
                if died or loop.time() > deadline:
                    log = (base / "worker.log").read_text(errors="replace")[-2000:]
                    raise BenchError(f"{engine}: {stored} of {intakes} stored\n{log}")
                await asyncio.sleep(0.25)
            return await _rate(store)
        finally:
            for worker in running:
                await stop(worker)
            await store.close()
            await asyncio.to_thread(redis_server.stop)
            if engine == "postgresql" and server is not None:
                await recreate(server, database_name, drop_only=True)
