"""SMS to `/track`: signed texts at a steady rate against `hotline serve --demo` in its default
layout (its worker child routes; embedded Redis and SQLite), and how long each sampled
text takes from being sent until `/track` shows its case stored and assigned. Open loop: each
text leaves at its own scheduled time, whether or not the ones before were answered, so a
slow service shows as latency rather than as a lower rate."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
from pathlib import Path

import aiohttp

from hotline.bench.intake import Server, serve, sms_requests
from hotline.bench.processes import stop

SAMPLE_EVERY = 20  # one text in 20 is followed on /track; polling more would load it more
POLL = 0.01  # seconds between looks at /track
GIVE_UP = 60.0  # seconds a sampled text may take before the round fails
_CODE = re.compile(r"/track/([0-9A-Z]{7})")


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


async def _follow(base: str, code: str, sent: float, n: int) -> float:
    # Each follower from a loopback address of its own: /track limits lookups in flight per
    # address (a guard against guessing codes), and one address polling hundreds of codes
    # at once is the bench, not a submitter.
    local = (f"127.1.{n // 250 % 250}.{n % 250 + 1}", 0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local)) as session:
        return await _poll(session, base, code, sent)


async def _poll(session: aiohttp.ClientSession, base: str, code: str, sent: float) -> float:
    loop = asyncio.get_running_loop()
    headers = {"Accept": "application/json"}
    while loop.time() - sent < GIVE_UP:
        async with session.get(f"{base}/track/{code}", headers=headers) as resp:
            answer = await resp.text()
            if resp.status != 200:
                raise RuntimeError(f"/track/{code} answered {resp.status}: {answer[:200]}")
            if json.loads(answer)["status"] != "received":
                return loop.time() - sent
        await asyncio.sleep(POLL)
    raise RuntimeError(f"case {code} was not stored within {GIVE_UP:g} s")


async def _ready(base: str, request: tuple[str, dict[str, str], bytes], n: int) -> None:
    """One text, followed until its case is stored: the service and its worker child (which
    starts a second or two after `serve` answers) are both up before the clock starts."""
    url, headers, body = request
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        reply = await resp.text()
    found = _CODE.search(reply)
    if resp.status != 200 or found is None:
        raise RuntimeError(f"the first text was refused: {resp.status} {reply[:200]}")
    await _follow(base, found.group(1), asyncio.get_running_loop().time(), n)


async def latency_round(ours: Server, rate: float, seconds: float) -> list[float]:
    """Seconds from send to visible on /track, for the sampled texts of one round."""
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    requests = sms_requests(ours.base, count + 1)
    await _ready(ours.base, requests.pop(), count)  # the last: a sender of its own
    waits: list[float] = []
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int, start: float) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            url, headers, body = requests[i]
            sent = loop.time()
            async with session.post(url, data=body, headers=headers) as resp:
                reply = await resp.text()
                if resp.status != 200:
                    raise RuntimeError(f"text {i} refused: {resp.status} {reply[:200]}")
            if i % SAMPLE_EVERY == 0:
                found = _CODE.search(reply)
                if found is None:
                    raise RuntimeError(f"no case code in the reply to text {i}: {reply[:200]}")
                waits.append(await _follow(ours.base, found.group(1), sent, i // SAMPLE_EVERY))

        start = loop.time() + 0.1
        await asyncio.gather(*(one(i, start) for i in range(count)))
    return waits


async def latency_rounds(rounds: int, rate: float, seconds: float) -> list[dict[str, float]]:
    """p50 and p99 (milliseconds) of each round, a fresh service per round."""
    found = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
            ours = await serve(Path(tmp), worker=True)
            try:
                waits = await latency_round(ours, rate, seconds)
            finally:
                await stop(ours.process)
        found.append(
            {
                "p50": 1000 * statistics.median(waits),
                "p99": 1000 * percentile(waits, 0.99),
            }
        )
    return found
