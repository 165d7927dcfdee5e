"""Shared fixtures: one real redis-server per test session (flushed per test), the database on
both engines (`engine`: a real SQLite file per test, and a PostgreSQL database emptied per
test in a throwaway cluster), the app built by the same factory `hotline serve` uses, and a
settable clock. Every test that touches the database runs once per engine unless its folder
pins `engine` (the browser and fault tests run on SQLite, the multi-node test on PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.bench.postgres import PostgresCluster
from hotline.queue import keys
from hotline.queue.embedded import EmbeddedRedis
from hotline.service.config import demo_config_path
from hotline.service.settings import Settings
from tests.fake_twilio import FakeTwilio
from tests.helpers import Clock, empty_tables

ENGINES = ["sqlite", "postgresql"]
TEST_DATABASE = "hotline_test"
_test_databases: dict[PostgresCluster, str] = {}  # made once per cluster, emptied per test


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    await client.flushall()
    # A fresh Redis for a fresh store: the code filter holds every stored code (none), as
    # `serve` marks it once built. Tests of the rebuild take the mark away.
    await client.set(keys.CODE_FILTER_READY, 0)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster | str]:
    """The test cluster (or the URL in HOTLINE_TEST_POSTGRES_URL). Without PostgreSQL
    installed the PostgreSQL runs are skipped locally, and fail in CI."""
    external = os.environ.get("HOTLINE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        cluster = PostgresCluster.start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    yield cluster
    cluster.stop()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(engine: str, request: pytest.FixtureRequest) -> str | None:
    """None on SQLite (the data dir's file, as in production); on PostgreSQL an emptied
    database shared by the tests one after another."""
    if engine == "sqlite":
        return None
    cluster: PostgresCluster | str = request.getfixturevalue("postgres")
    if isinstance(cluster, str):
        url = cluster
    else:
        if cluster not in _test_databases:
            _test_databases[cluster] = await cluster.create_database(TEST_DATABASE)
        url = _test_databases[cluster]
    await empty_tables(url)
    return url


@pytest.fixture
def db_url(database_url: str | None, tmp_path: Path) -> str:
    """The database URL for tests that open a Store themselves."""
    return database_url or f"sqlite:///{tmp_path / 'db.sqlite3'}"


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # 11:00 in Shanghai


@pytest.fixture
def config_path() -> Path:
    return demo_config_path()


@pytest.fixture
def settings(
    tmp_path: Path, redis_server: EmbeddedRedis, config_path: Path, database_url: str | None
) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        config_path=config_path,
        secret_key="test-secret-key",
        redis_url=redis_server.url,
        run_worker=False,  # tests route with RouterConsumer.run_burst
        argon2_profile="CHEAPEST",  # the same setting production uses, at test cost
        database_url=database_url,
    )


@pytest.fixture
async def app(settings: Settings, clock: Clock, redis_client: redis.Redis) -> web.Application:
    return create_app(settings, clock=clock)


@pytest.fixture
async def client(app: web.Application) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def fake_twilio() -> AsyncIterator[tuple[FakeTwilio, str]]:
    """A local fake of Twilio's Messages API and its base URL (for TWILIO_API_BASE)."""
    fake = FakeTwilio()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()
