"""Several machines' worth of processes on this one: two `hotline serve` nodes on their own
ports and data dirs (as behind a load balancer) and two `hotline worker`s, sharing one
PostgreSQL database and one Redis. A load is split across both nodes; one node and one worker
are killed with SIGKILL mid-load; then every code handed out must be exactly one case. Also:
a login on one node is valid on the other, and a console open on one node hears about a case
that came in through the other. Every loop is bounded in time."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from hotline.bench.postgres import PostgresCluster
from hotline.queue.embedded import EmbeddedRedis
from hotline.service.settings import DEMO_PASSWORD
from hotline.service.store import Store
from tests.faults.load import Ledger, Load
from tests.processes import Service, kill_all, start_worker

pytestmark = pytest.mark.timeout(180)
RECOVERY = 15.0
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def database(postgres: PostgresCluster | str) -> str:
    if isinstance(postgres, str):
        pytest.skip("needs a cluster of its own to make a database in")
    return await postgres.create_database("multinode")


class Nodes:
    def __init__(self, tmp_path: Path, redis_url: str, database_url: str) -> None:
        self.tmp_path = tmp_path
        self.env = {
            "HOTLINE_REDIS_URL": redis_url,
            "HOTLINE_DATABASE_URL": database_url,
            # One secret for the whole installation: sessions, forms and case codes are
            # signed with it on every node.
            "HOTLINE_SECRET_KEY": "multinode-test-secret",
            "HOTLINE_ARGON2_PROFILE": "CHEAPEST",
        }
        self.web = [Service(tmp_path / f"node{i}", env=self.env) for i in range(2)]
        for node in self.web:
            node.start_args = ["--no-worker"]
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        env = self.web[0].env | {"HOTLINE_DATA_DIR": str(self.tmp_path / f"worker{index}")}
        self.workers.append(start_worker(env, self.tmp_path / f"worker-{index}.log"))
        return self.workers[-1]

    def stop(self) -> None:
        kill_all([*self.workers, *(node.process for node in self.web)])


@pytest.fixture
async def nodes(tmp_path: Path, redis_server: EmbeddedRedis, database: str) -> AsyncIterator[Nodes]:
    n = Nodes(tmp_path, redis_server.url, database)
    try:
        # Both nodes and both workers start at once: they migrate the empty database once.
        starting = [asyncio.to_thread(node.start) for node in n.web]
        n.start_worker()
        n.start_worker()
        await asyncio.gather(*starting)
        yield n
    finally:
        n.stop()


async def stored_codes(database: str) -> dict[str, int]:
    store = await Store.open(database)
    try:
        rows = await store.fetch("SELECT code, count(*) AS n FROM cases GROUP BY code")
    finally:
        await store.close()
    return {row["code"]: int(row["n"]) for row in rows}


async def wait_stored(database: str, ledger: Ledger, within: float) -> set[str]:
    wanted = set(ledger.codes.values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    missing = wanted
    while loop.time() < deadline:
        missing = wanted - set(await stored_codes(database))
        if not missing:
            break
        await asyncio.sleep(0.3)
    return missing


async def login(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(base + "/console/login") as resp:
        token = _TOKEN.search(await resp.text())
    assert token
    form = {"csrf_token": token.group(1), "member": "shen", "password": DEMO_PASSWORD}
    async with session.post(base + "/console/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()


async def test_two_nodes_two_workers_one_database(nodes: Nodes, database: str) -> None:
    a, b = nodes.web
    jar = aiohttp.CookieJar(unsafe=True)  # one browser; cookies are per host, not per port
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        await login(session, a.base)
        async with session.get(b.base + "/console") as resp:
            assert resp.status == 200
            assert resp.url.path != "/console/login", "a session made on node A is valid on B"

        # A console open on node A hears about a case that came in through node B.
        async with session.get(a.base + "/console/events") as stream:
            assert stream.status == 200
            code = await asyncio.to_thread(b.submit, "跨节点的实时更新")
            heard = ""
            async with asyncio.timeout(10):
                while code not in heard:
                    heard += (await stream.content.readline()).decode()

    # A load split across both nodes; one node and one worker die mid-load.
    loads = [Load(a.base), Load(b.base)]
    running = [
        asyncio.create_task(load.run(seconds=6, concurrency=4, pause=0.02)) for load in loads
    ]
    await asyncio.sleep(2.5)
    assert b.process is not None
    b.process.send_signal(signal.SIGKILL)
    nodes.workers[0].send_signal(signal.SIGKILL)
    await asyncio.gather(*running, return_exceptions=True)

    ledger = Ledger()
    for load in loads:
        for key, code in load.ledger.codes.items():
            ledger.record(key, code)
        ledger.conflicts += load.ledger.conflicts
    missing = await wait_stored(database, ledger, RECOVERY)
    stored = await stored_codes(database)
    doubled = {c: n for c, n in stored.items() if n > 1}
    given = set(ledger.codes.values())
    sent = [len(load.ledger.codes) for load in loads]
    print(f"codes given {len(given)} (node A {sent[0]}, node B {sent[1]}),"
          f" stored {len(stored)}, missing {len(missing)}")  # fmt: skip
    assert not ledger.conflicts, ledger.conflicts[:5]
    assert len(loads[1].ledger.codes) > 10, "node B took no load before it was killed"
    assert len(loads[0].ledger.codes) > 50, "the load did not run"
    assert not missing, f"{len(missing)} codes handed out but never stored: {sorted(missing)[:5]}"
    assert not doubled
    assert nodes.workers[1].poll() is None, "the surviving worker is still running"
