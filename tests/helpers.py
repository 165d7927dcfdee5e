"""Helpers the tests share: a settable clock, routing in burst mode, reading the form, emptying
a PostgreSQL database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from hotline import appkeys
from hotline.queue.router import RouterConsumer
from hotline.service.cases import Case
from hotline.service.i18n import translate
from hotline.service.labels import FIELD_LABELS

Client = TestClient[web.Request, web.Application]


@dataclass
class Clock:
    """A clock the tests set; the app and router read it through appkeys.CLOCK."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


async def route_all(app: web.Application) -> int:
    """Run the router in burst mode against the app's Redis and store."""
    consumer = RouterConsumer(
        app[appkeys.REDIS],
        app[appkeys.STORE].cases,
        lambda: app[appkeys.DUTY].policy(app[appkeys.CLOCK]()),
        app[appkeys.CLOCK],
        notifier=app[appkeys.NOTIFIER],
        consumer="test",
    )
    consumer.metrics = app[appkeys.METRICS]  # as the app wires its own router
    return await consumer.run_burst()


async def stored(app: web.Application, code: str) -> Case:
    """The stored case of a code (it must be there)."""
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None, code
    return case


def field_named(field: str, lang: str = "zh-CN") -> str:
    """How a refusal names a form field to a reader: "标记：", "Tag: "."""
    label = translate(lang, FIELD_LABELS.get(field, field))
    return label + ("：" if lang == "zh-CN" else ": ")


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_IDEM = re.compile(r'name="idem" value="([^"]+)"')


async def form_fields(client: Client, path: str = "/submit") -> dict[str, str]:
    """GET the form (which sets the CSRF cookie) and return its hidden fields."""
    resp = await client.get(path)
    assert resp.status == 200
    html = await resp.text()
    token, idem = _TOKEN.search(html), _IDEM.search(html)
    assert token and idem
    return {"csrf_token": token.group(1), "idem": idem.group(1)}


async def entries(client: redis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """All entries of a stream, typed."""
    found: Any = await client.xrange(stream)
    return list(found)


def office_hours_config(base: Path, folder: Path) -> Path:
    """The demo config with duty hours on workdays 08:30-17:30."""
    text = base.read_text("utf-8").replace(
        'ack_within = "30m"', 'ack_within = "30m"\nhours = "workdays 08:30-17:30"'
    )
    path = folder / "office-hours.toml"
    path.write_text(text, "utf-8")
    return path


async def empty_tables(url: str) -> None:
    """Empty every table of the hotline schema (not Alembic's version): a fresh database for
    the next test at a fraction of CREATE DATABASE's cost."""
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
