"""The SQLite store: migrations, idempotent case creation, an append-only event log."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.service.cases import Intake
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.store import Store
from hotline.service.store.cases import CodeConflict

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def intake(key: str = "web:k1") -> Intake:
    return Intake(key=key, channel="web", text="路灯坏了", received_at=NOW, language="zh-CN")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await Store.open(tmp_path / "db.sqlite3")
    await store.accounts.sync(load_config(demo_config_path()).members)
    yield store
    await store.close()


async def test_schema_is_versioned_and_reopening_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    for _ in range(2):
        store = await Store.open(path)
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] >= 1
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 999")
    with pytest.raises(RuntimeError, match="newer than this program"):
        await Store.open(path)


async def test_case_is_created_once_per_intake_key(store: Store) -> None:
    first = await store.cases.create("AAAAAAA", intake(), "chen", "on-duty", NOW)
    again = await store.cases.create("BBBBBBB", intake(), "zhu", "on-duty", NOW)
    assert first == (first[0], True)
    assert again == (first[0], False)
    case = await store.cases.by_code("AAAAAAA")
    assert case is not None and case.assignee_id == "chen" and case.assignee_name == "陈代表"
    assert await store.cases.by_code("BBBBBBB") is None
    assert [e.kind for e in await store.cases.events(first[0])] == ["received", "assigned"]


async def test_a_taken_code_is_never_reused(store: Store) -> None:
    await store.cases.create("AAAAAAA", intake("web:k1"), "chen", "on-duty", NOW)
    with pytest.raises(CodeConflict):
        await store.cases.create("AAAAAAA", intake("web:k2"), "chen", "on-duty", NOW)
    assert await store.cases.count() == 1  # and nothing half-written


async def test_events_are_append_only(store: Store, tmp_path: Path) -> None:
    await store.cases.create("AAAAAAA", intake(), "chen", "on-duty", NOW)
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE events SET kind = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("DELETE FROM events")


async def test_members_removed_from_config_stay_but_inactive(store: Store, tmp_path: Path) -> None:
    config = load_config(demo_config_path())
    await store.cases.create("AAAAAAA", intake(), "chen", "on-duty", NOW)
    trimmed = type(config)(
        config.point,
        config.duty,
        tuple(m for m in config.members if m.id != "chen"),
        config.departments,
        config.categories,
    )
    await store.accounts.sync(trimmed.members)
    case = await store.cases.by_code("AAAAAAA")
    assert case is not None and case.assignee_name == "陈代表"
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT active FROM members WHERE id = 'chen'").fetchone()[0] == 0
