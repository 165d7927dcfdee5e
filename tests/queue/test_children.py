"""`serve`'s worker child, supervised: started again when it dies, reported when it cannot
start, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import os
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
