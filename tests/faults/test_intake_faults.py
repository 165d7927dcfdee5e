"""Faults injected into real processes under load, then counted (Jepsen-style): every code a
submitter was handed is exactly one stored case, nothing is lost or doubled, and the backlog
drains within 10 s of recovery. Processes: `hotline serve --no-worker`, `hotline worker`s
and a redis-server of the test's own, all on loopback; every loop is bounded in time."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hotline.queue.embedded import EmbeddedRedis
from tests.faults.load import Load, register_kiosk, stored_codes, wait_stored
from tests.processes import Service, kill_all, start_worker

pytestmark = pytest.mark.timeout(120)
RECOVERY = 10.0  # seconds within which everything handed out must be stored


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, to stop and start at will."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


class Cluster:
    def __init__(self, tmp_path: Path, redis_server: EmbeddedRedis) -> None:
        env = {"HOTLINE_REDIS_URL": redis_server.url}
        self.web = Service(tmp_path / "data", env=env)
        self.web.start_args = ["--no-worker"]
        self.database = self.web.data_dir / "hotline.sqlite3"
        self.workers: list[subprocess.Popen[bytes]] = []
        self.tmp_path = tmp_path

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.tmp_path / f"worker-{len(self.workers)}.log"
        self.workers.append(start_worker(self.web.env, log))
        return self.workers[-1]

    def stop(self) -> None:
        kill_all([*self.workers, self.web.process])


@pytest.fixture
async def cluster(tmp_path: Path, redis_server: EmbeddedRedis) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path, redis_server)
    c.web.start()
    c.start_worker()
    yield c
    c.stop()


def verdict(load: Load, database: Path, missing: set[str]) -> None:
    stored = stored_codes(database)
    doubled = {code: n for code, n in stored.items() if n > 1}
    given = set(load.ledger.codes.values())
    print(f"sent {load.sent}, codes given {len(given)}, refused {load.ledger.refused},"
          f" stored {len(stored)}, missing {len(missing)}, doubled {len(doubled)}")  # fmt: skip
    assert not load.ledger.conflicts, load.ledger.conflicts[:5]
    assert not missing, f"{len(missing)} codes handed out but never stored: {sorted(missing)[:5]}"
    assert not doubled
    assert len(given) > 50, "the load did not run"


@pytest.mark.parametrize("outage", [0.0, 2.0], ids=["restart", "down-2s"])
async def test_redis_stopped_during_intake_on_every_channel(
    cluster: Cluster, redis_server: EmbeddedRedis, outage: float
) -> None:
    load = Load(cluster.web.base, register_kiosk(cluster.database))
    # A load the one router of this 2-core machine keeps up with (batched routing will
    # raise it): the invariants are checked here; throughput is `hotline bench`'s job.
    running = asyncio.create_task(load.run(seconds=5 + outage, concurrency=5, pause=0.05))
    await asyncio.sleep(1.5)
    redis_server.stop()  # everything after this is spooled by serve
    await asyncio.sleep(outage)
    redis_server.start()  # same socket, same AOF
    await running
    missing, took = await wait_stored(cluster.database, load.ledger, RECOVERY)
    verdict(load, cluster.database, missing)
    assert took < RECOVERY


async def test_kill_9_of_a_worker_mid_batch(cluster: Cluster) -> None:
    victim = cluster.workers[0]
    cluster.start_worker()
    load = Load(cluster.web.base)
    running = asyncio.create_task(load.run(seconds=4, concurrency=8))
    await asyncio.sleep(1.5)
    victim.send_signal(signal.SIGKILL)  # whatever it held is reclaimed by the other worker
    await running
    missing, took = await wait_stored(cluster.database, load.ledger, RECOVERY)
    verdict(load, cluster.database, missing)
    assert took < RECOVERY


async def test_sigterm_of_serve_during_load(cluster: Cluster) -> None:
    load = Load(cluster.web.base)
    running = asyncio.create_task(load.run(seconds=5, concurrency=5, pause=0.05))
    await asyncio.sleep(1.5)
    assert cluster.web.process is not None
    cluster.web.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(cluster.web.process.wait, 15) == 0
    await asyncio.to_thread(cluster.web.start)  # back on the same port and data
    await running
    missing, took = await wait_stored(cluster.database, load.ledger, RECOVERY)
    verdict(load, cluster.database, missing)
    assert took < RECOVERY
