"""PostgreSQL connections the server drops (a restart, a failover, an administrator ending
sessions) are found on first use and replaced: reads and writes go on without the pool
checking each connection before every use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from hotline.service.cases import Intake
from hotline.service.store import Store
from hotline.service.store.database import Tx

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str | None) -> AsyncIterator[Store]:
    if database_url is None:
        pytest.skip("SQLite has no server to drop connections")
    opened = await Store.open(database_url)
    yield opened
    await opened.close()


async def end_every_session(url: str) -> int:
    """What `pg_terminate_backend` does to the pool's connections (as a restart would)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        ended = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(ended)
    finally:
        await conn.close()


async def test_reads_and_writes_go_on_after_the_server_drops_connections(
    store: Store, database_url: str
) -> None:
    intake = Intake(key="web:1", channel="web", text="路灯", received_at=NOW, language="zh-CN")
    await store.cases.create("ABCDEFG", intake, None, "", NOW)
    for _ in range(3):
        assert await end_every_session(database_url) >= 1  # the pool's idle connections
        case = await store.cases.by_code("ABCDEFG")
        assert case is not None and case.text == "路灯"
        assert await end_every_session(database_url) >= 1

        async def touch(db: Tx) -> None:
            await db.execute("UPDATE cases SET updated_at = updated_at WHERE code = 'ABCDEFG'")

        await store.write(touch)
