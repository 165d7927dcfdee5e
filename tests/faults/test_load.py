"""Load on a real `hotline serve`: 500 concurrent clients on the web form and the SMS webhook
while 150 live-update streams are open. Intake never answers 5xx, and every code handed out
becomes its case. (Throughput is measured by `hotline bench`, not here.)"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import aiohttp
import pytest

from hotline.service.config import demo_config_path
from hotline.service.settings import DEMO_PASSWORD
from tests.faults.load import Load, wait_stored
from tests.processes import Service

pytestmark = pytest.mark.timeout(180)
MEMBERS = 30  # five live views each (the per-member cap): 150 streams
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def many_members(folder: Path) -> Path:
    """The demo point with 30 more representatives."""
    extra = "".join(
        f'[[members]]\nid = "m{i:02d}"\nname = "代表{i:02d}"\nrole = "rep"\n\n'
        for i in range(MEMBERS)
    )
    text = (
        demo_config_path()
        .read_text("utf-8")
        .replace("[[departments]]", extra + "[[departments]]", 1)
    )
    path = folder / "point.toml"
    path.write_text(text, "utf-8")
    return path


async def open_streams(
    base: str, member: str, count: int
) -> tuple[list[aiohttp.ClientResponse], aiohttp.ClientSession]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(base + "/console/login") as resp:
        token = _TOKEN.search(await resp.text())
    assert token
    form = {"csrf_token": token.group(1), "member": member, "password": DEMO_PASSWORD}
    async with session.post(base + "/console/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
    streams = []
    for _ in range(count):
        resp = await session.get(base + "/console/events", headers={"Accept": "text/event-stream"})
        assert resp.status == 200, resp.status
        streams.append(resp)
    return streams, session


async def test_500_clients_and_150_live_streams_get_no_5xx(tmp_path: Path) -> None:
    env = {"HOTLINE_CONFIG": str(many_members(tmp_path)), "HOTLINE_ARGON2_PROFILE": "CHEAPEST"}
    service = Service(tmp_path / "data", env=env)
    sessions: list[aiohttp.ClientSession] = []
    try:
        await asyncio.to_thread(service.start)
        opened = await asyncio.gather(
            *(open_streams(service.base, f"m{i:02d}", 5) for i in range(MEMBERS))
        )
        streams = [s for group, _ in opened for s in group]
        sessions = [session for _, session in opened]
        assert len(streams) == 150

        load = Load(service.base)
        statuses: list[int] = []

        async def client(i: int) -> None:
            timeout = aiohttp.ClientTimeout(total=60)
            async with aiohttp.ClientSession(
                cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout
            ) as session:
                key = uuid.uuid4().hex
                try:
                    if i % 2:
                        await load.web(session, key)
                    else:
                        await load.sms(session, "SM" + key)
                    statuses.append(200)
                except AssertionError as exc:
                    statuses.append(int(str(exc).split("answered ")[1][:3]))

        await asyncio.gather(*(client(i) for i in range(500)))
        server_errors = [s for s in statuses if s >= 500]
        assert not server_errors, f"{len(server_errors)} of {len(statuses)} intake answers were 5xx"
        assert len(load.ledger.codes) == 500
        missing, _ = await wait_stored(service.data_dir / "hotline.sqlite3", load.ledger, 60)
        assert not missing
        # The live views stayed open through it, and each heard about the new cases.
        for stream in streams:
            line = b""
            while not line.startswith(b"data:"):
                line = await asyncio.wait_for(stream.content.readline(), 10)
            stream.close()
    finally:
        for session in sessions:
            await session.close()
        if service.process and service.process.poll() is None:
            service.process.kill()
            service.process.wait()
