"""The store on both engines: migrations, idempotent case creation, an append-only event log."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory

from hotline.service.cases import Intake
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.store import Store
from hotline.service.store.cases import CodeConflict
from hotline.service.store.database import DatabaseError, alembic_config

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def intake(key: str = "web:k1") -> Intake:
    return Intake(key=key, channel="web", text="路灯坏了", received_at=NOW, language="zh-CN")


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    await store.accounts.sync(load_config(demo_config_path()).members)
    yield store
    await store.close()


async def test_reopening_is_harmless(db_url: str) -> None:
    for _ in range(2):
        store = await Store.open(db_url)
        [version] = await store.fetch("SELECT version_num FROM alembic_version")
        await store.close()
    assert version["version_num"] == head_revision()


async def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_commits_reach_the_disk_before_returning(tmp_path: Path) -> None:
    """synchronous=FULL on every connection, the writer's included: a power cut cannot roll
    back a batch whose stream entries the router acknowledged after its commit."""
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        [read] = await store.fetch("PRAGMA synchronous")
        written = await store.write(lambda db: db.rows("PRAGMA synchronous"))
    finally:
        await store.close()
    assert read["synchronous"] == written[0]["synchronous"] == 2  # FULL


async def test_a_newer_schema_is_refused(store: Store, db_url: str) -> None:
    await store.write(lambda db: db.execute("UPDATE alembic_version SET version_num = '9999'"))
    try:
        with pytest.raises(RuntimeError, match="newer than this program"):
            await Store.open(db_url)
    finally:
        await store.write(
            lambda db: db.execute(
                "UPDATE alembic_version SET version_num = :head", {"head": head_revision()}
            )
        )


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    return head


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


async def test_events_are_append_only(store: Store) -> None:
    await store.cases.create("AAAAAAA", intake(), "chen", "on-duty", NOW)
    for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(DatabaseError, match="append-only"):
            await store.write(lambda db, sql=sql: db.execute(sql))  # type: ignore[misc]
    assert len(await store.fetch("SELECT id FROM events")) == 2


async def test_members_removed_from_config_stay_but_inactive(store: Store) -> None:
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
    [chen] = await store.fetch("SELECT active FROM members WHERE id = 'chen'")
    assert chen["active"] == 0


async def test_a_members_deadlines_are_counted_in_the_database_as_the_clocks_say(
    store: Store,
) -> None:
    """The console's on-duty banner and the handoff text: counted in SQL (a member on duty
    at a busy point holds thousands), the same as service/caselists.clocks counts them."""
    from datetime import timedelta

    from hotline.service.caselists import clocks
    from hotline.service.cases import to_utc_text
    from hotline.service.timed import IN_WORK, NEAR

    hour = timedelta(hours=1)
    # (status, responded, response due, resolution due, referral due, assignee), from NOW
    shapes = [
        ("assigned", False, -hour, 9 * hour, None, "zhu"),  # late: no response in time
        ("acknowledged", True, -hour, 9 * hour, None, "zhu"),  # responded: not late
        ("acknowledged", True, -hour, hour, None, "zhu"),  # near: resolution within 2 h
        ("referred", True, -hour, 9 * hour, -hour, "zhu"),  # late: the referral's due
        ("referred", True, -hour, 9 * hour, hour, "zhu"),  # near: the referral's due
        ("responded", True, -hour, -hour, None, "zhu"),  # late: resolution
        ("assigned", False, 3 * hour, 9 * hour, None, "zhu"),  # neither
        ("reopened", True, -hour, 30 * hour, -hour, "zhu"),  # a referral due, not referred
        ("resolved", True, -hour, -hour, None, "zhu"),  # finished: not counted
        ("received", False, -hour, -hour, None, "zhu"),  # not in work
        ("assigned", False, -hour, -hour, None, "wang"),  # another member's
    ]
    for i, (status, responded, respond, resolve, referral, member) in enumerate(shapes):
        case_id, _ = await store.cases.create(f"DL{i:05d}", intake(f"web:dl{i}"), member, "", NOW)
        values = {
            "id": case_id,
            "status": status,
            "first_response_at": to_utc_text(NOW - 2 * hour) if responded else None,
            "first_response_due": to_utc_text(NOW + respond),
            "resolution_due": to_utc_text(NOW + resolve),
            "referral_due": to_utc_text(NOW + referral) if referral else None,
        }
        await store.write(partial(_set_case, values=values))
    config = load_config(demo_config_path())
    late = near = 0
    held = await store.cases.with_status(IN_WORK, assignee="zhu")
    for case in held:
        c = clocks(case, config, NOW)
        dues = [d for d in (c.respond_due, c.resolve_due, c.referral_due) if d is not None]
        late += any(d < NOW for d in dues)
        near += not any(d < NOW for d in dues) and any(d < NOW + NEAR for d in dues)
    counted = await store.cases.deadlines(IN_WORK, "zhu", NOW, NOW + NEAR)
    assert counted == {"open": len(held), "near": near, "late": late}
    assert counted == {"open": 8, "near": 2, "late": 3}
    assert await store.cases.deadlines(IN_WORK, "nobody", NOW, NOW + NEAR) == {
        "open": 0, "near": 0, "late": 0}  # fmt: skip


async def _set_case(db: Any, values: dict[str, Any]) -> int:
    return int(
        await db.execute(
            "UPDATE cases SET status = :status, first_response_at = :first_response_at,"
            " first_response_due = :first_response_due, resolution_due = :resolution_due,"
            " referral_due = :referral_due WHERE id = :id",
            values,
        )
    )
