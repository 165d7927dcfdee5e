"""The worker as a child of `hotline serve`: the router, the sender and the timed work in a
process of their own, so that HTTP load never takes their CPU (on two cores, each process
gets one). Without it, a storm of texts starved the in-process router: intake answered, and
cases were stored minutes later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
from collections.abc import Mapping, Sequence

import aiohttp

from hotline.queue.embedded import die_with_parent

log = logging.getLogger(__name__)

QUICK_DEATH = 10.0  # seconds: a worker that dies sooner is started again only after a pause
MAX_PAUSE = 30.0  # seconds: the longest pause between starts of a worker that keeps dying
STOP_GRACE = 15.0  # seconds a stopping worker gets to finish its batch before SIGKILL
ASK_WITHIN = 2.0  # seconds the worker's /healthz has to answer `serve`'s question
ASK_EVERY = 5.0  # seconds between those questions


def free_port() -> int:
    """A loopback port free now (another process may take it before it is bound)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """`hotline worker` as a child: tied to this process (PDEATHSIG: if `serve` is killed
    outright, so is the worker, and another consumer reclaims what it held), started again
    when it dies (after a pause that doubles while it keeps dying at once: a bad config or an
    unreachable database never spins), stopped with SIGTERM so it finishes its batch.

    With `health`, the worker serves its own /healthz on a loopback port chosen at each start
    (`--health-port`; a port taken meanwhile makes that start fail, and the next start picks
    another), `watch` asks it every ASK_EVERY seconds, and `reported` says what it said: a
    worker alive but stuck (its router or sender loop stalled, or its event loop not
    answering at all) is then seen too."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, health: bool = False):
        self.argv = list(argv)
        self.env = dict(env)
        self.health = health
        self.health_port: int | None = None
        self._answered_at = 0.0  # when its /healthz last answered, ok or not (or it started)
        self._said: list[str] = []  # its stalled loops, as its /healthz last named them
        self._next_ask = 0.0
        self._asking: asyncio.Task[None] | None = None
        self.process: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._down_since: float | None = None
        self._next_start = 0.0
        self._pause = 1.0
        self._quick_deaths = 0  # in a row: a worker that cannot start (config, database)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        argv = self.argv
        if self.health:  # a new port each time: one taken meanwhile only costs a restart
            self.health_port = free_port()
            argv = [*argv, "--health-host", "127.0.0.1", "--health-port", str(self.health_port)]
        self.process = await asyncio.create_subprocess_exec(
            *argv, env=self.env, preexec_fn=die_with_parent
        )
        self._started_at = self._answered_at = asyncio.get_running_loop().time()
        self._said = []
        self._next_ask = self._started_at + ASK_EVERY
        self._down_since = None
        log.info("worker process %d started (router, sender, timed work)", self.process.pid)

    async def watch(self) -> None:
        """Called every second or so: start the worker again if it died; every ASK_EVERY
        seconds, ask a running one how it is (in the background)."""
        now = asyncio.get_running_loop().time()
        if self.process is None or self.running():
            if self.running() and now - self._started_at >= QUICK_DEATH:
                self._quick_deaths = 0  # it got going
            if self.health and self.running() and now >= self._next_ask:
                self._next_ask = now + ASK_EVERY
                if self._asking is None or self._asking.done():
                    self._asking = asyncio.create_task(self.ask(now))
            return
        if self._down_since is None:
            self._down_since = now
            quick = now - self._started_at < QUICK_DEATH
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            self._pause = min(self._pause * 2, MAX_PAUSE) if quick else 1.0
            self._next_start = now + (self._pause if quick else 0.0)
            log.error("worker process %d exited (%s); starting it again%s", self.process.pid,
                      self.process.returncode,
                      f" in {self._pause:.0f} s" if quick else "")  # fmt: skip
        if now >= self._next_start:
            await self.start()

    def stalled(self, now: float, limit: float) -> bool:
        """True when the worker has been down for `limit` seconds, or keeps dying as it
        starts (three times in a row: each restart would hide it otherwise)."""
        down = self._down_since is not None and now - self._down_since > limit
        return down or self._quick_deaths >= 3

    async def ask(self, now: float) -> None:
        """Ask the running worker's own /healthz (within ASK_WITHIN) and keep what it says
        for `reported`: `watch` does so every ASK_EVERY seconds, so /healthz itself never
        waits on the child."""
        answer = await self.get("/healthz")
        if answer is None:
            return  # not answering (or not asked): `reported` says so once it has lasted
        status, body = answer
        self._answered_at = now
        if status == 200:
            self._said = []
            return
        try:
            said = json.loads(body)
            stalled = [str(c) for c in said.get("consumers", [])]
        except (ValueError, AttributeError, TypeError):
            stalled = []
        self._said = [f"worker process: {c}" for c in stalled] or [f"worker process: {status}"]

    async def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes] | None:
        """GET `path` of the running worker's health listener (its /healthz, its /metrics):
        (status, body), or None when it has none or does not answer within ASK_WITHIN."""
        if not self.health or not self.running() or self.health_port is None:
            return None
        url = f"http://127.0.0.1:{self.health_port}{path}"
        try:
            timeout = aiohttp.ClientTimeout(total=ASK_WITHIN)
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, headers=headers) as resp,
            ):
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            return None

    def reported(self, now: float, limit: float) -> list[str]:
        """What is wrong with the running worker, as it last said of itself: its stalled
        loops, or "worker process not answering" once it has not answered at all for `limit`
        seconds (starting up, or busy for a moment, is not a fault)."""
        if not self.health or not self.running():
            return []
        if now - self._answered_at > limit:
            return ["worker process not answering"]
        return list(self._said)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not finished its batch within STOP_GRACE."""
        if self._asking is not None:
            self._asking.cancel()
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            log.error("worker process %d did not stop in %.0f s; killing it", process.pid,
                      STOP_GRACE)  # fmt: skip
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
