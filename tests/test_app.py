"""The assembly: resources it owns behave under faults (the embedded Redis dies, is back)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline import appkeys
from hotline.app import create_app
from hotline.service.settings import Settings
from tests.helpers import Clock, form_fields


async def test_a_dead_embedded_redis_is_started_again(
    settings: Settings, clock: Clock, tmp_path: Path
) -> None:
    own = dataclasses.replace(settings, redis_url=None, data_dir=tmp_path / "d")
    app = create_app(own, clock=clock)
    async with TestClient(TestServer(app)) as client:
        pid = int((own.redis_dir / "redis.pid").read_text())
        await app[appkeys.REDIS].set("hotline:probe", "kept")  # AOF: survives the crash
        await asyncio.sleep(1.1)  # everysec fsync
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            await asyncio.sleep(0.1)
            try:
                if await app[appkeys.REDIS].ping():
                    break
            except Exception:  # noqa: S112 - waiting for the restart
                continue
        new_pid = int((own.redis_dir / "redis.pid").read_text())
        assert new_pid != pid
        assert await app[appkeys.REDIS].get("hotline:probe") == b"kept"
        fields = await form_fields(client)
        resp = await client.post(
            "/submit", data=fields | {"text": "停电了"}, headers={"Accept": "application/json"}
        )
        assert resp.status == 201
        assert not app[appkeys.INTAKE].spooled()  # it went to Redis, not the spool


def test_the_app_has_no_string_keys(settings: Settings) -> None:
    app = create_app(settings)
    assert all(isinstance(key, web.AppKey) for key in app)
