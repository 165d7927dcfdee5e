"""`serve`'s worker child, supervised: started again when it dies, reported when it cannot
start, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import pytest

from hotline.queue import children
from hotline.queue.children import WorkerProcess


async def test_a_worker_that_dies_as_it_starts_is_restarted_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(children, "MAX_PAUSE", 0.05)  # no waiting between starts here
    child = WorkerProcess([sys.executable, "-c", "raise SystemExit(3)"], os.environ)
    await child.start()
    pids = {child.pid}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not child.stalled(loop.time(), 30.0) and loop.time() < deadline:
        await child.watch()
        pids.add(child.pid)
        await asyncio.sleep(0.02)
    assert child.stalled(loop.time(), 30.0)  # three quick deaths in a row: /healthz says so
    assert len(pids) >= 3  # and it was started again each time
    await child.stop()


async def test_a_running_worker_is_left_alone_and_stopped_with_sigterm() -> None:
    child = WorkerProcess([sys.executable, "-c", "import signal, time; time.sleep(60)"], os.environ)
    await child.start()
    first = child.pid
    for _ in range(5):
        await child.watch()
        await asyncio.sleep(0.02)
    assert child.pid == first and child.running()
    assert not child.stalled(asyncio.get_running_loop().time(), 30.0)
    await child.stop()
    assert not child.running() and child.process is not None
    assert child.process.returncode == -15  # SIGTERM


# A stand-in for `hotline worker --health-port N`: its /healthz answers as SAYS tells it.
FAKE_WORKER = """
import http.server, json, os, sys
port = int(sys.argv[sys.argv.index("--health-port") + 1])
status, body = json.loads(os.environ["SAYS"])
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def _stand_in(status: int, body: object) -> WorkerProcess:
    says = json.dumps([status, body])
    return WorkerProcess([sys.executable, "-c", FAKE_WORKER], os.environ | {"SAYS": says},
                         health=True)  # fmt: skip


async def _first_report(status: int, body: object) -> list[str]:
    """What a stand-in answering `status` with `body` is first reported as."""
    child = _stand_in(status, body)
    await child.start()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(200):
            await child.ask(loop.time())
            if said := child.reported(loop.time(), 30.0):
                return said
            await asyncio.sleep(0.05)
        raise AssertionError("the stand-in worker was never reported")
    finally:
        await child.stop()


async def _answering(child: WorkerProcess) -> float:
    """Until the stand-in's /healthz has answered (it needs a moment to start); when."""
    loop = asyncio.get_running_loop()
    for _ in range(200):
        now = loop.time()
        await child.ask(now)
        if child._answered_at == now:
            return now
        await asyncio.sleep(0.05)
    raise AssertionError("the stand-in worker never answered")


async def test_serve_relays_what_its_worker_child_says_of_itself() -> None:
    """A worker alive but stuck is seen: its own /healthz's stalled consumers are relayed,
    and a worker whose event loop does not answer at all is reported once it has not
    answered for the limit (not at once: starting up, or a busy moment, is not a fault)."""
    assert await _first_report(503, {"status": "stalled", "consumers": ["hotline:router"]}) == [
        "worker process: hotline:router"]  # fmt: skip
    assert await _first_report(500, "not json at all") == ["worker process: 500"]
    # Still answering that it is stalled, past the limit: relayed as it says, not "not
    # answering".
    child = _stand_in(503, {"status": "stalled", "consumers": ["hotline:sender"]})
    await child.start()
    try:
        now = await _answering(child)
        await child.ask(now + 31)
        assert child.reported(now + 31, 30.0) == ["worker process: hotline:sender"]
    finally:
        await child.stop()

    child = _stand_in(200, {"status": "ok"})
    await child.start()
    assert child.process is not None
    try:
        now = await _answering(child)
        assert child.reported(now, 30.0) == []
        child.process.send_signal(signal.SIGSTOP)  # its loop stops turning
        await child.ask(now + 1)  # no answer within ASK_WITHIN
        assert child.reported(now + 1, 30.0) == []  # a moment: not yet a fault
        assert child.reported(now + 31, 30.0) == ["worker process not answering"]
        child.process.send_signal(signal.SIGCONT)
        await child.ask(now + 32)
        assert child.reported(now + 32, 30.0) == []
    finally:
        child.process.send_signal(signal.SIGCONT)
        await child.stop()


async def test_watch_asks_a_running_worker_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(children, "ASK_EVERY", 0.05)
    child = _stand_in(200, {"status": "ok"})
    await child.start()
    started = child._answered_at
    try:
        for _ in range(200):
            await child.watch()  # returns at once: the question is a task of its own
            if child._answered_at > started:
                break
            await asyncio.sleep(0.05)
        assert child._answered_at > started
    finally:
        await child.stop()


async def test_a_worker_without_its_health_port_is_not_asked() -> None:
    child = WorkerProcess([sys.executable, "-c", "import time; time.sleep(60)"], os.environ)
    await child.start()
    try:
        assert child.health_port is None
        now = asyncio.get_running_loop().time() + 100
        await child.ask(now)
        assert child.reported(now, 30.0) == []
    finally:
        await child.stop()
