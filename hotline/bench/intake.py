"""HTTP intake against a bare aiohttp baseline: a signed Twilio webhook with a fresh MessageSid
each time, and the web form answered as JSON. Both servers run as processes of their own on
loopback; one client drives each in turn with the same requests, prepared (and signed) before
the clock starts, so the client's cost is the same on both sides."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from twilio.request_validator import RequestValidator

from hotline.bench.processes import free_port, spawn, stop
from hotline.service.settings import DEMO_TWILIO_AUTH_TOKEN

CONCURRENCY = 16
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Server:
    base: str
    process: asyncio.subprocess.Process


async def _start(args: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    process = await spawn(args, env, log)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(base + "/submit") as resp:
                    if resp.status == 200:
                        return Server(base, process)
            except aiohttp.ClientError:
                pass
            if process.returncode is not None:
                break
            await asyncio.sleep(0.1)
    tail = await asyncio.to_thread(log.read_text, errors="replace")
    raise RuntimeError(f"{args} did not start: {tail[-2000:]}")


async def serve(base: Path, *, worker: bool, database_url: str | None = None) -> Server:
    """`hotline serve --demo` on embedded Redis and SQLite under `base` (or the PostgreSQL
    database at `database_url`), with its in-process router or (`worker` False) without."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env |= {"HOTLINE_DATA_DIR": str(base / "data"), "HOTLINE_ARGON2_PROFILE": "CHEAPEST"}
    if database_url is not None:
        env["HOTLINE_DATABASE_URL"] = database_url
    args = ["-m", "hotline", "serve", "--demo", "--port", str(port)]
    return await _start(args if worker else [*args, "--no-worker"], env, port, base / "serve.log")


async def start_servers(base: Path) -> tuple[Server, Server]:
    """`hotline serve --demo --no-worker` (embedded Redis and SQLite) and the baseline."""
    ours = await serve(base, worker=False)
    bare_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    bare = await _start(
        ["-m", "hotline.bench.baseline", str(bare_port)], env, bare_port, base / "bare.log"
    )
    return ours, bare


def sms_requests(base: str, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    """Signed webhook posts, each with a new MessageSid and sender."""
    url = base + "/sms/twilio"
    validator = RequestValidator(DEMO_TWILIO_AUTH_TOKEN)
    prepared = []
    for i in range(count):
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": f"+86139{i % 10**8:08d}",
            "To": "+8657300000000",
            "Body": f"厂区{i}号路灯不亮,请尽快处理",
            "NumMedia": "0",
        }
        headers = {
            "X-Twilio-Signature": validator.compute_signature(url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        prepared.append((url, headers, urlencode(params).encode()))
    return prepared


def _cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user and system), from /proc; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _with_children(pid: int) -> list[int]:
    """The process and its children (`serve`'s embedded redis-server)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def _measured(
    server: Server,
    requests: list[tuple[str, dict[str, str], bytes]],
    seconds: float,
    session_setup: dict[str, str] | None,
) -> tuple[float, float]:
    """Requests per second, and the server's CPU per request in µs (its children's too):
    where a ratio is missed, how far the server's own cost is from the baseline's."""
    pids = _with_children(server.process.pid)
    before = sum(map(_cpu_seconds, pids))
    rate, answered = await _drive(requests, seconds, session_setup)
    spent = sum(map(_cpu_seconds, pids)) - before
    return rate, spent / answered * 1e6 if answered else 0.0


async def _drive(
    requests: list[tuple[str, dict[str, str], bytes]],
    seconds: float,
    session_setup: dict[str, str] | None = None,
) -> tuple[float, int]:
    """Requests per second answered 2xx by CONCURRENCY clients within `seconds`, and how
    many."""
    loop = asyncio.get_running_loop()
    queue = iter(requests)
    answered = 0
    failed = 0
    deadline = loop.time() + seconds
    began = loop.time()

    async def client() -> None:
        nonlocal answered, failed
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            extra: dict[str, str] = {}
            if session_setup is not None:  # the web form: its cookie and CSRF token
                async with session.get(session_setup["form"]) as resp:
                    found = _TOKEN.search(await resp.text())
                extra = {"csrf_token": found.group(1) if found else ""}
            while loop.time() < deadline:
                try:
                    url, headers, body = next(queue)
                except StopIteration:
                    return
                if extra:
                    body += b"&" + urlencode(extra).encode()
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        answered += 1
                    else:
                        failed += 1

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    if failed:
        raise RuntimeError(f"{failed} intake requests were refused during the measurement")
    return answered / (loop.time() - began), answered


def form_requests(base: str, count: int) -> list[tuple[str, dict[str, str], bytes]]:
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return [
        (
            base + "/submit",
            headers,
            urlencode({"text": f"园区{i}号门路灯坏了", "idem": uuid.uuid4().hex}).encode(),
        )
        for i in range(count)
    ]


async def intake_round(ours: Server, bare: Server, seconds: float) -> dict[str, float]:
    """One interleaved round: SMS then the form, ours then the baseline."""
    rates: dict[str, float] = {}
    # More than either side answers in the time: the baseline answered 15,000 a second on a
    # fast day, and ran out of 8,000 a second's worth before its time was up.
    budget = int(seconds * 20_000)
    for path, make in (("sms", sms_requests), ("form", form_requests)):
        for side, server in (("ours", ours), ("bare", bare)):
            setup = {"form": server.base + "/submit"} if path == "form" else None
            rate, cpu = await _measured(server, make(server.base, budget), seconds, setup)
            rates[f"{path}:{side}"], rates[f"{path}:{side}:cpu"] = rate, cpu
    return rates


async def intake_rounds(rounds: int, seconds: float) -> list[dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        ours, bare = await start_servers(Path(tmp))
        try:
            return [await intake_round(ours, bare, seconds) for _ in range(rounds)]
        finally:
            await stop(ours.process)
            await stop(bare.process)
