"""PostgreSQL connections the server drops (a restart, a failover, an administrator ending
sessions) are found on first use and replaced: reads and writes go on without the pool
checking each connection before every use."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from hotline.service.cases import Intake
from hotline.service.store import Store
from hotline.service.store.database import PostgresDatabase, StoreUnavailable, Tx, unavailable

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


async def test_a_server_that_cannot_be_reached_is_named_so() -> None:
    """asyncpg's refusal comes through SQLAlchemy as a plain OSError: the store names it
    StoreUnavailable, which pages answer as a 503 and consumers wait on (uncounted)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = create_async_engine(f"postgresql+asyncpg://hotline@127.0.0.1:{port}/hotline")
    db = PostgresDatabase(engine)
    try:
        with pytest.raises(StoreUnavailable) as read:
            await db.fetch("SELECT 1")
        with pytest.raises(StoreUnavailable):
            await db.write(lambda tx: tx.execute("SELECT 1"))
        assert unavailable(read.value)
    finally:
        await engine.dispose()
