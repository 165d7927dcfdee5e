"""Shared fixtures: one real redis-server per test session (flushed per test), a real SQLite
file per test, the app built by the same factory `hotline serve` uses, and a settable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.queue.embedded import EmbeddedRedis
from hotline.service.config import demo_config_path
from hotline.service.settings import Settings
from tests.fake_twilio import FakeTwilio
from tests.helpers import Clock


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
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # 11:00 in Shanghai


@pytest.fixture
def config_path() -> Path:
    return demo_config_path()


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis, config_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        config_path=config_path,
        secret_key="test-secret-key",
        redis_url=redis_server.url,
        run_worker=False,  # tests route with RouterConsumer.run_burst
        argon2_profile="CHEAPEST",  # the same setting production uses, at test cost
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
