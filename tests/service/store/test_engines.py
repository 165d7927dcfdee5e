"""One schema and one set of migrations on both engines, and the guarantees that must hold when
several processes share the database: each test opens several Stores (separate connection
pools, as separate processes have) on one database and races them."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from hotline.bench.postgres import PostgresCluster
from hotline.queue.signals import RedisSignals
from hotline.service.cases import Intake, Status
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.dutybook import DutyBook, DutyError
from hotline.service.settings import Settings, SettingsError
from hotline.service.store import Store
from hotline.service.store.database import (
    BASELINE,
    DatabaseError,
    UnsupportedDatabase,
    async_url,
)
from hotline.service.store.schema import described, metadata

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
COMPARE = {"include_name": described}  # as migrations/env.py compares
RACERS = 4


def intake(key: str) -> Intake:
    return Intake(key=key, channel="web", text="路灯坏了", received_at=NOW, language="zh-CN")


@pytest.fixture
async def fresh_url(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database no one has migrated yet."""
    if engine == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    cluster: PostgresCluster | str = request.getfixturevalue("postgres")
    if isinstance(cluster, str):
        pytest.skip("needs a cluster of its own to make databases in")
    return await cluster.create_database(f"fresh_{request.node.name[-20:].strip('[]-')}")


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[list[Store]]:
    """Several stores on one database, as several processes would have."""
    opened = [await Store.open(db_url) for _ in range(RACERS)]
    await opened[0].accounts.sync(load_config(demo_config_path()).members)
    yield opened
    for store in opened:
        await store.close()


async def test_a_migrated_database_matches_the_schema_definition(db_url: str) -> None:
    store = await Store.open(db_url)
    try:

        def differences(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn, opts=COMPARE), metadata))

        diffs = await store.db.run_sync(differences)
    finally:
        await store.close()
    assert diffs == []


async def test_processes_starting_at_once_migrate_once(fresh_url: str) -> None:
    opened = await asyncio.gather(*(Store.open(fresh_url) for _ in range(RACERS)))
    try:
        versions = await opened[0].fetch("SELECT version_num FROM alembic_version")
        assert len(versions) == 1
        await opened[1].cases.create("AAAAAAA", intake("web:k1"), None, "", NOW)
        assert await opened[2].cases.count() == 1
    finally:
        for store in opened:
            await store.close()


async def test_the_same_intake_stored_at_once_makes_one_case(stores: list[Store]) -> None:
    """Router idempotency rests on the unique intake key, not on a look before the insert."""
    results = await asyncio.gather(
        *(s.cases.create(f"CODE{i:03d}", intake("sms:SM1"), "chen", "on-duty", NOW)
          for i, s in enumerate(stores))
    )  # fmt: skip
    assert sorted(created for _, created in results) == [False] * (RACERS - 1) + [True]
    assert len({case_id for case_id, _ in results}) == 1
    assert await stores[0].cases.count() == 1
    [row] = await stores[0].fetch("SELECT count(*) AS n FROM events")
    assert row["n"] == 2  # received, assigned: once


async def test_overlapping_batches_stored_at_once_make_each_case_once(
    stores: list[Store],
) -> None:
    """Workers storing batches that share intakes (a redelivered entry claimed by another
    worker): each case is made once, with its events once; every worker is told which case
    each of its intakes became, none refused."""
    from hotline.service.store.cases import NewCase

    def batch(keys: range) -> list[NewCase]:
        return [NewCase(f"CODE{k:03d}", intake(f"web:{k}"), "chen", "on-duty") for k in keys]

    batches = [batch(range(i * 5, i * 5 + 20)) for i in range(RACERS)]
    results = await asyncio.gather(
        *(s.cases.create_many(b, NOW) for s, b in zip(stores, batches, strict=True))
    )
    made = [r.case_id for stored, _ in results for r in stored if r.created]
    assert len(made) == len(set(made)) == 20 + 5 * (RACERS - 1)
    cases: dict[str, int | None] = {}  # each intake key's case, as every worker was told it
    for b, (stored, _) in zip(batches, results, strict=True):
        assert all(r.case_id is not None for r in stored)
        assert [r.code for r in stored] == [n.code for n in b]
        for n, r in zip(b, stored, strict=True):
            assert cases.setdefault(n.intake.key, r.case_id) == r.case_id
    [row] = await stores[0].fetch("SELECT count(*) AS n FROM events")
    assert row["n"] == 2 * len(made)


async def test_conflicting_transitions_make_one_change(stores: list[Store]) -> None:
    case_id, _ = await stores[0].cases.create("AAAAAAA", intake("web:k1"), "chen", "duty", NOW)
    case = await stores[0].cases.by_code("AAAAAAA")
    assert case is not None and case.status == Status.ASSIGNED
    results = await asyncio.gather(
        *(
            s.cases.transition(
                case,
                {"status": str(Status.ACKNOWLEDGED), "updated_at": f"2026-11-24T03:0{i}:00Z"},
                ("acknowledged", Status.ACKNOWLEDGED, f"m{i}", {}),
                NOW,
            )
            for i, s in enumerate(stores)
        )
    )
    assert sum(r is not None for r in results) == 1
    events = await stores[0].cases.events(case_id)
    assert [e.kind for e in events].count("acknowledged") == 1


async def test_concurrent_counters_lose_no_update(stores: list[Store]) -> None:
    """Read-then-write inside one write() is serializable on both engines."""
    await stores[0].write(
        lambda db: db.execute("INSERT INTO scheduler_state (name, value) VALUES ('counter', '0')")
    )

    async def bump(store: Store) -> None:
        async def step(db: object) -> None:
            value = await db.scalar(  # type: ignore[attr-defined]
                "SELECT value FROM scheduler_state WHERE name = 'counter'"
            )
            await db.execute(  # type: ignore[attr-defined]
                "UPDATE scheduler_state SET value = :v WHERE name = 'counter'",
                {"v": str(int(value) + 1)},
            )

        for _ in range(10):
            await store.write(step)

    await asyncio.gather(*(bump(s) for s in stores))
    [row] = await stores[0].fetch("SELECT value FROM scheduler_state WHERE name = 'counter'")
    assert row["value"] == str(RACERS * 10)


async def test_a_timed_step_is_done_by_one_process(stores: list[Store]) -> None:
    mark = (NOW + timedelta(hours=1)).isoformat()
    moved = await asyncio.gather(*(s.scheduler.move("handoff", None, mark) for s in stores))
    assert moved.count(True) == 1
    later = (NOW + timedelta(hours=2)).isoformat()
    moved = await asyncio.gather(*(s.scheduler.move("handoff", mark, later) for s in stores))
    assert moved.count(True) == 1
    assert await stores[0].scheduler.mark("handoff") == later


async def test_postgresql_plans_each_read_for_its_values(engine: str, db_url: str) -> None:
    """A prepared search run a sixth time must not get a generic plan (one that walks every
    case for a rare phrase): every pooled connection plans each read for its own values;
    writes keep PostgreSQL's default for their transaction."""
    if engine != "postgresql":
        pytest.skip("SQLite has no generic plans to switch to")
    store = await Store.open(db_url)
    try:
        reads = await asyncio.gather(*(store.fetch("SHOW plan_cache_mode") for _ in range(8)))
        assert {row["plan_cache_mode"] for rows in reads for row in rows} == {"force_custom_plan"}
        # Writes run their inserts many times over: generic plans are theirs to keep.
        written = await store.write(lambda db: db.rows("SHOW plan_cache_mode"))
        assert [row["plan_cache_mode"] for row in written] == ["auto"]
        after = await asyncio.gather(*(store.fetch("SHOW plan_cache_mode") for _ in range(8)))
        assert {row["plan_cache_mode"] for rows in after for row in rows} == {"force_custom_plan"}
    finally:
        await store.close()


async def test_many_rows_are_inserted_as_written_with_what_was_inserted(
    engine: str, db_url: str
) -> None:
    """`Tx.insert` (the router's batches): every value as it was given (NULLs, numbers, text
    with quotes, commas, braces and control characters, which an array must carry intact),
    a conflict skipping its row alone; on PostgreSQL the rows inserted come back from the
    one statement, on SQLite the caller is told to look them up. `one_of` matches the same
    rows for any number of values."""
    from hotline.service.store import schema

    odd = ['他说"好", {1,2}', "NULL", "", "tab\there\nline\\", "\x01控制", "x" * 5000]
    rows = [
        {"purpose_key": f"k{i}", "case_id": None, "member_id": None,
         "to_number": f"+86139{i:08d}", "body": body, "status": "queued", "attempts": i,
         "created_at": "2026-11-01T03:00:00.000000Z", "updated_at": "2026-11-01T03:00:00.000000Z"}
        for i, body in enumerate(odd)
    ]  # fmt: skip
    store = await Store.open(db_url)
    try:
        await store.outbox.add("k1", "+8613900000000", "before", NOW)  # k1 is taken

        async def insert(db: Any) -> tuple[Any, list[Any]]:
            found = await db.insert(
                schema.outbox, rows, "ON CONFLICT (purpose_key) DO NOTHING", returning="id"
            )
            named, params = db.one_of("purpose_key", "key", [r["purpose_key"] for r in rows])
            sql = f"SELECT * FROM outbox WHERE {named} ORDER BY id"  # noqa: S608 - ours
            return found, await db.rows(sql, params)

        found, stored = await store.write(insert)
        by_key = {r["purpose_key"]: r for r in stored}
        assert by_key["k1"]["body"] == "before"
        for row in rows:
            if row["purpose_key"] != "k1":
                got = by_key[row["purpose_key"]]
                assert {k: got[k] for k in row} == row
        inserted = sorted(r["id"] for r in stored if r["purpose_key"] != "k1")
        if engine == "postgresql":
            assert sorted(r["id"] for r in found) == inserted
        else:
            assert found is None
    finally:
        await store.close()


async def test_long_reads_at_once_share_the_few_connections_set_aside(tmp_path: Path) -> None:
    """A report's months are read together: on SQLite they wait for the ASIDE connections
    (each a thread and a page cache of its own) instead of opening one each."""
    import threading

    from hotline.service.store.database import SqliteDatabase

    store = await Store.open(tmp_path / "aside.sqlite3")
    try:
        threads = threading.active_count()
        reads = [store.db.fetch_aside("SELECT :n AS n", {"n": n}) for n in range(12)]
        answers = await asyncio.gather(*reads)
        assert [rows[0]["n"] for rows in answers] == list(range(12))
        assert threading.active_count() - threads == SqliteDatabase.ASIDE
        await asyncio.gather(*(store.db.fetch_aside("SELECT 1") for _ in range(12)))
        assert threading.active_count() - threads == SqliteDatabase.ASIDE
    finally:
        await store.close()


@pytest.mark.parametrize("fault", ["fails", "is cancelled"])
async def test_a_long_read_whose_connection_fails_to_open_holds_up_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """Reads waiting for a turn while a connection is being opened: when that open fails
    (no file descriptors left) or its read is cancelled, the waiting reads open their own."""
    from hotline.service.store import database

    store = await Store.open(tmp_path / "aside.sqlite3")
    connect = database._sqlite_connect
    opening = asyncio.Event()
    broken = True

    async def slow_then_broken(path: Path) -> Any:
        if not broken:
            return await connect(path)
        opening.set()
        await asyncio.sleep(0.2)
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(database, "_sqlite_connect", slow_then_broken)
    try:
        first = [asyncio.create_task(store.db.fetch_aside("SELECT 1 AS n")) for _ in range(2)]
        await opening.wait()
        later = [asyncio.create_task(store.db.fetch_aside("SELECT 2 AS n")) for _ in range(4)]
        await asyncio.sleep(0)
        broken = False  # what the later reads open works
        if fault == "is cancelled":
            for task in first:
                task.cancel()
        done = await asyncio.wait_for(asyncio.gather(*later), timeout=5)
        assert [rows[0]["n"] for rows in done] == [2, 2, 2, 2]
        failed = await asyncio.gather(*first, return_exceptions=True)
        expected = asyncio.CancelledError if fault == "is cancelled" else sqlite3.OperationalError
        assert all(isinstance(f, expected) for f in failed), failed
    finally:
        await store.close()


def test_only_sqlite_and_postgresql_are_accepted() -> None:
    assert async_url("postgresql://u@db/hotline").drivername == "postgresql+asyncpg"
    assert async_url("sqlite:///var/x.sqlite3").drivername == "sqlite+aiosqlite"
    with pytest.raises(UnsupportedDatabase, match="mysql"):
        async_url("mysql://u@db/hotline")
    # libpq's sslmode, as managed PostgreSQL hands it out, means asyncpg's ssl.
    managed = async_url("postgresql://u:p@db.example.org/hotline?sslmode=require")
    assert dict(managed.query) == {"ssl": "require"}


def test_the_setting_takes_postgresql_only(tmp_path: Path) -> None:
    env = {"HOTLINE_DATA_DIR": str(tmp_path), "HOTLINE_SECRET_KEY": "k"}
    settings = Settings.from_env(env | {"HOTLINE_DATABASE_URL": "postgresql://u@db/h"}, demo=True)
    assert settings.database == "postgresql://u@db/h" and not settings.database_is_sqlite
    assert Settings.from_env(env, demo=True).database == f"sqlite:///{tmp_path}/hotline.sqlite3"
    with pytest.raises(SettingsError, match="HOTLINE_DATA_DIR"):
        Settings.from_env(env | {"HOTLINE_DATABASE_URL": "sqlite:///elsewhere.db"}, demo=True)


# -- SQLite files from before Alembic ---------------------------------------------------------


def legacy_file(path: Path, version: int) -> None:
    """A SQLite file as the releases before Alembic left it, at PRAGMA user_version `version`
    (their hand-numbered scripts are kept in legacy/ for this)."""
    scripts = sorted((Path(__file__).parent / "legacy").glob("*.sql"))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for number, script in enumerate(scripts[:version], start=1):
            body = script.read_text(encoding="utf-8")
            db.executescript(f"BEGIN;\n{body}\nPRAGMA user_version = {number};\nCOMMIT;")
        db.execute(
            "INSERT INTO cases (code, intake_key, channel, status, text, language, received_at,"
            " created_at, updated_at) VALUES ('OLD0001', 'web:old', 'web', 'received', '旧的',"
            " 'zh-CN', :at, :at, :at)",
            {"at": "2025-01-01T00:00:00.000000Z"},
        )
    finally:
        db.close()


@pytest.mark.parametrize("version", [1, 3, 6])
async def test_a_file_from_before_alembic_is_adopted(tmp_path: Path, version: int) -> None:
    path = tmp_path / "old.sqlite3"
    legacy_file(path, version)
    # Processes starting at once on the old file: one adopts it, the others find it done.
    opened = await asyncio.gather(*(Store.open(path) for _ in range(RACERS)))
    store = opened[0]
    try:
        case = await store.cases.by_code("OLD0001")
        assert case is not None and case.text == "旧的" and not case.presidium
        rows = await store.fetch("SELECT version_num FROM alembic_version")
        assert rows and rows[0]["version_num"] >= BASELINE
        await store.cases.create("NEW0001", intake("web:new"), None, "", NOW)
        assert await store.cases.count() == 2

        def differences(conn: Connection) -> list[object]:
            return list(compare_metadata(MigrationContext.configure(conn, opts=COMPARE), metadata))

        assert await store.db.run_sync(differences) == []  # exactly as a new database
        for sql in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
            with pytest.raises(DatabaseError, match="append-only"):
                await store.write(lambda db, sql=sql: db.execute(sql))  # type: ignore[misc]
    finally:
        for each in opened:
            await each.close()


async def test_a_text_is_queued_once_whoever_queues_it(stores: list[Store]) -> None:
    """Referral reminders, rating requests, handoff summaries: one outbox row per purpose."""
    added = await asyncio.gather(
        *(s.outbox.add("referral-overdue:1:x", "+8613900000001", "逾期", NOW) for s in stores)
    )
    assert [new for _, new in added].count(True) == 1
    assert len({item_id for item_id, _ in added}) == 1


async def test_two_reassigns_at_once_make_one_change(stores: list[Store]) -> None:
    """The status stays "assigned": the assignee the member saw guards the write (casework
    passes the fields an action changes as `when`)."""
    await stores[0].cases.create("AAAAAAA", intake("web:k1"), "chen", "duty", NOW)
    case = await stores[0].cases.by_code("AAAAAAA")
    assert case is not None
    members = ["zhu", "wang", "shen", "admin"]  # none the case has already
    results = await asyncio.gather(
        *(
            s.cases.transition(
                case,
                {"status": str(Status.ASSIGNED), "assignee_id": to},
                ("reassign", Status.ASSIGNED, "head", {"to": to}),
                NOW,
                when={"assignee_id": case.assignee_id},
            )
            for s, to in zip(stores, members, strict=True)
        )
    )
    assert sum(r is not None for r in results) == 1
    winner = members[next(i for i, r in enumerate(results) if r is not None)]
    after = await stores[0].cases.by_code("AAAAAAA")
    assert after is not None and after.assignee_id == winner


async def test_overlapping_overrides_added_at_once_store_one(
    stores: list[Store], redis_client: redis.Redis
) -> None:
    config = load_config(demo_config_path())
    books = [DutyBook(s, RedisSignals(redis_client), lambda: config) for s in stores[:2]]
    start = NOW + timedelta(days=7)
    results = await asyncio.gather(
        *(
            book.add_cover(member, start, start + timedelta(hours=8), "shen", NOW)
            for book, member in zip(books, ["zhu", "wang"], strict=True)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, DutyError) for r in results) == 1
    assert len(await stores[0].fetch("SELECT id FROM duty_changes")) == 1


async def test_senders_taking_the_same_texts_at_once_take_each_once(stores: list[Store]) -> None:
    ids = [
        (await stores[0].outbox.add(f"t:{i}", f"+86139000003{i:02d}", "x", NOW))[0]
        for i in range(40)
    ]
    taken = await asyncio.gather(*(s.outbox.take(ids, NOW) for s in stores))
    claimed = sorted(item.id for batch in taken for item in batch)
    assert claimed == sorted(ids)  # each row by exactly one sender
    rows = await stores[0].fetch("SELECT status, attempts FROM outbox")
    assert {(r["status"], r["attempts"]) for r in rows} == {("sending", 1)}


async def test_migration_0003_fills_the_report_columns_from_the_event_log(tmp_path: Path) -> None:
    """A database of revision 0002 with cases worked through: after the upgrade each case
    knows how often it was reopened, when its referral was answered and when it closed; one
    reopened by a low rating is not resolved any more; due times come from the config."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from hotline.service.caselists import fill_due_times
    from hotline.service.store.database import alembic_config

    path = tmp_path / "old.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    t = "2026-11-0{}T03:00:00.000000Z".format
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0002")
        conn.execute(text("INSERT INTO members (id, name, role) VALUES ('chen', '陈', 'rep')"))
        for n, status in ((1, "reopened"), (2, "closed"), (3, "responded")):
            conn.execute(
                text(
                    "INSERT INTO cases (id, code, intake_key, channel, status, text, language,"
                    " category, received_at, created_at, updated_at, resolved_at,"
                    " department_id) VALUES (:id, :code, :key, 'web', :status, 'x', 'zh-CN',"
                    " 'safety', :at, :at, :at, :resolved, :dept)"
                ),
                {"id": n, "code": f"CODE00{n}", "key": f"k{n}", "status": status, "at": t(1),
                 "resolved": t(4) if n != 3 else None, "dept": "urban" if n == 3 else None},
            )  # fmt: skip
        events = [
            (1, t(3), "resolve", "resolved"), (1, t(4), "rated", "reopened"),
            (2, t(3), "resolve", "resolved"), (2, t(4), "reopen", "reopened"),
            (2, t(5), "resolve", "resolved"), (2, t(6), "rated", "closed"),
            (3, t(2), "refer", "referred"), (3, t(3), "answer", "responded"),
        ]  # fmt: skip
        for case_id, at, kind, status in events:
            conn.execute(
                text("INSERT INTO events (case_id, at, kind, status) VALUES (:c, :at, :k, :s)"),
                {"c": case_id, "at": at, "k": kind, "s": status},
            )
    engine.dispose()
    store = await Store.open(path)  # migrates to the head
    try:
        rows = {r["code"]: r for r in await store.fetch("SELECT * FROM cases ORDER BY id")}
        assert (rows["CODE001"]["reopens"], rows["CODE001"]["resolved_at"]) == (1, None)
        assert (rows["CODE002"]["reopens"], rows["CODE002"]["closed_at"]) == (1, t(6))
        assert rows["CODE003"]["referral_answered_at"] == t(3)
        assert rows["CODE003"]["closed_at"] is None
        assert all(r["first_response_due"] is None for r in rows.values())
        assert await fill_due_times(store, load_config(demo_config_path())) == 3
        case = await store.cases.by_code("CODE001")
        assert case is not None and case.first_response_due == datetime(
            2026, 11, 1, 4, 0, tzinfo=UTC
        )  # "safety" answers within an hour
        assert await fill_due_times(store, load_config(demo_config_path())) == 0
    finally:
        await store.close()


async def test_migration_0007_indexes_the_companies_it_finds_and_goes_back(tmp_path: Path) -> None:
    """A SQLite database of revision 0006 with cases: after the upgrade the companies' names
    are indexed (each once) and a search finds a case by its company or its text; back at
    0006 the old index over both finds them again; up again, new cases are indexed too."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from hotline.service.store.database import alembic_config

    path = tmp_path / "old.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    jiaxing = "嘉兴科技有限公司"
    cases = [(1, jiaxing, "路灯不亮"), (2, jiaxing, "积水"), (3, None, "停电")]

    def migrate(revision: str, up: bool = True) -> None:
        with engine.begin() as conn:
            (command.upgrade if up else command.downgrade)(alembic_config(conn), revision)

    migrate("0006")
    with engine.begin() as conn:
        for n, company, said in cases:
            conn.execute(
                text(
                    "INSERT INTO cases (id, code, intake_key, channel, status, text, language,"
                    " company, received_at, created_at, updated_at) VALUES (:id, :code, :key,"
                    " 'web', 'received', :text, 'zh-CN', :company, :at, :at, :at)"
                ),
                {"id": n, "code": f"CODE00{n}", "key": f"k{n}", "text": said,
                 "company": company, "at": f"2026-11-0{n}T03:00:00.000000Z"},
            )  # fmt: skip

    def found(q: str) -> Awaitable[list[str]]:
        return searched(path, q)

    migrate("0007")
    with engine.connect() as conn:
        names = conn.execute(text("SELECT name FROM cases_search_companies")).scalars().all()
    assert names == ["嘉兴科技有限公司"]
    assert await found("科技有限") == ["CODE002", "CODE001"]
    assert await found("路灯不亮") == ["CODE001"]
    migrate("0006", up=False)
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT name FROM sqlite_master")).scalars().all()
        old = conn.execute(
            text("SELECT rowid FROM cases_search WHERE cases_search MATCH '\"科技有限\"'")
        ).scalars()
        assert sorted(old) == [1, 2]
    assert not [t for t in tables if t.startswith("cases_search_companies")]
    assert "cases_company" not in tables
    migrate("0007")
    with engine.begin() as conn:
        conn.execute(text("UPDATE cases SET company = '嘉善纺织有限公司' WHERE id = 3"))
    engine.dispose()
    assert await found("嘉善纺织") == ["CODE003"]
    assert await found("有限公司") == ["CODE003", "CODE002", "CODE001"]


async def searched(url: str | Path, q: str) -> list[str]:
    """The codes a console search for `q` finds (its first page, through the index)."""
    from hotline.service.store.caselists import Listing

    store = await Store.open(url)
    try:
        return [c.code for c in await store.lists.page(Listing(text=q), 50)]
    finally:
        await store.close()


class Revisions:
    """A test database moved up and down Alembic's revisions, and SQL sent to it, outside
    the program's Store (which migrates to the newest on opening)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import event
        from sqlalchemy.ext.asyncio import create_async_engine

        from hotline.service.store.database import _with_functions

        self.engine = create_async_engine(async_url(url))
        if self.engine.dialect.name == "sqlite":  # what the triggers of 0010 call
            event.listen(self.engine.sync_engine, "connect", _with_functions)

    async def migrate(self, revision: str, up: bool = True) -> None:
        from alembic import command

        from hotline.service.store.database import alembic_config

        move = command.upgrade if up else command.downgrade
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: move(alembic_config(c), revision))

    async def sql(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        from sqlalchemy import text

        async with self.engine.begin() as conn:
            result = await conn.execute(text(statement), params or {})
            return list(result.scalars()) if result.returns_rows else []

    async def rows(self, statement: str) -> list[tuple[Any, ...]]:
        """A query's rows, whole."""
        from sqlalchemy import text

        async with self.engine.begin() as conn:
            return [tuple(row) for row in await conn.execute(text(statement))]

    async def has_table(self, name: str) -> bool:
        postgresql = self.engine.dialect.name == "postgresql"
        found = await self.sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = :name"
            if postgresql
            else "SELECT count(*) FROM sqlite_master WHERE name = :name",
            {"name": name},
        )
        return found == [1]


async def test_migration_0008_indexes_the_companies_on_postgresql_and_goes_back(
    engine: str, fresh_url: str
) -> None:
    """A PostgreSQL database of revision 0007 with cases: after the upgrade the companies'
    names are in a table of their own (each once) and a search finds a case by its company;
    back at 0007 the table, its function and triggers are gone; up again, a new case's
    company and a changed one are added."""
    if engine != "postgresql":
        pytest.skip("SQLite has had its table of names since migration 0007")

    db = Revisions(fresh_url)
    migrate, sql = db.migrate, db.sql

    async def add(n: int, company: str | None) -> None:
        await sql(
            "INSERT INTO cases (id, code, intake_key, channel, status, text, language, company,"
            " received_at, created_at, updated_at) VALUES (:id, :code, :key, 'web', 'received',"
            " '停电', 'zh-CN', :company, :at, :at, :at)",
            {"id": n, "code": f"CODE00{n}", "key": f"k{n}", "company": company,
             "at": f"2026-11-0{n}T03:00:00.000000Z"},
        )  # fmt: skip

    def found(q: str) -> Awaitable[list[str]]:
        return searched(fresh_url, q)

    await migrate("0007")
    for n, company in ((1, "嘉兴科技有限公司"), (2, "嘉兴科技有限公司"), (3, None)):
        await add(n, company)
    await migrate("0008")
    assert await sql("SELECT name FROM cases_search_companies") == ["嘉兴科技有限公司"]
    assert await found("科技有限") == ["CODE002", "CODE001"]
    await migrate("0007", up=False)
    assert await sql("SELECT to_regclass('cases_search_companies')::text") == [None]
    assert await sql("SELECT count(*) FROM pg_proc WHERE proname LIKE 'cases_search%'") == [0]
    await migrate("0008")
    await sql("UPDATE cases SET company = '嘉善纺织有限公司' WHERE id = 3")
    await add(4, "平湖机械有限公司")
    names = ["嘉兴科技有限公司", "嘉善纺织有限公司", "平湖机械有限公司"]
    assert sorted(await sql("SELECT name FROM cases_search_companies")) == sorted(names)
    await db.engine.dispose()
    assert await found("嘉善纺织") == ["CODE003"]
    assert await found("有限公司") == ["CODE004", "CODE003", "CODE002", "CODE001"]


async def test_migration_0009_moves_texts_the_provider_has_out_of_queued_and_back(
    fresh_url: str,
) -> None:
    """Rows stored with Twilio's own "queued" (they have its sid) become "queued-provider",
    which the sender never takes; rows of ours still waiting stay "queued". Back at 0008
    they are "queued" again."""
    from sqlalchemy import text

    db = Revisions(fresh_url)
    migrate = db.migrate

    async def statuses() -> dict[str, str]:
        async with db.engine.begin() as conn:
            rows = await conn.execute(text("SELECT purpose_key, status FROM outbox"))
            return {key: status for key, status in rows}

    await migrate("0008")
    async with db.engine.begin() as conn:
        for key, status, sid in (("ours", "queued", None), ("theirs", "queued", "SM1"),
                                 ("sent", "sent", "SM2")):  # fmt: skip
            await conn.execute(
                text(
                    "INSERT INTO outbox (purpose_key, to_number, body, status, provider_sid,"
                    " created_at, updated_at) VALUES (:key, '+8613900000001', 'x', :status,"
                    " :sid, :at, :at)"
                ),
                {"key": key, "status": status, "sid": sid, "at": "2026-11-01T03:00:00.000000Z"},
            )
    await migrate("0009")
    assert await statuses() == {"ours": "queued", "theirs": "queued-provider", "sent": "sent"}
    await migrate("0008", up=False)
    assert await statuses() == {"ours": "queued", "theirs": "queued", "sent": "sent"}
    await migrate("0009")
    await db.engine.dispose()
    store = await Store.open(fresh_url)
    try:
        items = await store.outbox.take([1, 2, 3], NOW, unsent="none")
        assert items == []
        assert {r["purpose_key"]: r["status"] for r in await store.fetch(
            "SELECT purpose_key, status FROM outbox")} == {
            "ours": "not-sent", "theirs": "queued-provider", "sent": "sent"}  # fmt: skip
    finally:
        await store.close()


async def test_migration_0010_indexes_the_pairs_of_stored_texts_and_goes_back(
    fresh_url: str,
) -> None:
    """Cases stored at 0009: after the upgrade a search of two characters finds them
    through the index of pairs (SQLite fills it; PostgreSQL's index is over a function of
    the text: test_query_plans.py shows a page read through it); back at 0009 the index and
    its function or triggers are gone; up again, a case stored by the program is indexed
    as it is stored."""

    db = Revisions(fresh_url)
    migrate, sql = db.migrate, db.sql

    def found(q: str) -> Awaitable[list[str]]:
        return searched(fresh_url, q)

    def index_of_pairs() -> str:
        if db.engine.dialect.name == "postgresql":
            return "SELECT count(*) FROM pg_class WHERE relname = 'cases_search_bigrams'"
        return "SELECT count(*) FROM sqlite_master WHERE name LIKE 'cases_search_bigrams%'"

    await migrate("0009")
    for n, said in ((1, "厂区路灯不亮"), (2, "北门积水"), (3, "路灯又坏了")):
        await sql(
            "INSERT INTO cases (code, intake_key, channel, status, text, language,"
            " received_at, created_at, updated_at) VALUES (:code, :key, 'web', 'received',"
            " :text, 'zh-CN', :at, :at, :at)",
            {"code": f"CODE00{n}", "key": f"k{n}", "text": said,
             "at": f"2026-11-0{n}T03:00:00.000000Z"},
        )  # fmt: skip
    await migrate("0010")
    assert await found("路灯") == ["CODE003", "CODE001"]
    assert await found("积水") == ["CODE002"]
    assert await found("门积") == ["CODE002"]
    await migrate("0009", up=False)
    assert await sql(index_of_pairs()) == [0]
    if db.engine.dialect.name == "postgresql":
        assert await sql("SELECT count(*) FROM pg_proc WHERE proname = 'hotline_bigrams'") == [0]
    await migrate("0010")
    await db.engine.dispose()
    store = await Store.open(fresh_url)
    try:
        await store.accounts.sync(load_config(demo_config_path()).members)
        intake = Intake("web:4", "web", "南门路灯闪烁", NOW, "zh-CN")
        await store.cases.create("CODE004", intake, "zhu", "on duty", NOW)
    finally:
        await store.close()
    assert await found("路灯") == ["CODE004", "CODE003", "CODE001"]


async def test_migration_0013_keeps_every_referral_from_the_event_log_and_goes_back(
    fresh_url: str,
) -> None:
    """Cases stored at 0012, worked through: after the upgrade each has its referrals as
    its events tell them (referred twice: the first taken back, the second answered;
    resolved while waiting: answered; reassigned while waiting: taken back), a case
    stored without its events gets the one its columns tell, and the months' kept
    figures are gone. Back at 0012 the table is gone; up again, it is filled again."""
    db = Revisions(fresh_url)
    t = "2026-11-{:02d}T03:00:00.000000Z".format
    await db.migrate("0012")
    await db.sql("INSERT INTO members (id, name, role) VALUES ('chen', '陈', 'rep')")
    cases = {  # id: status, latest department, its due, when answered
        1: ("responded", "urban", t(9), t(8)),
        2: ("resolved", "budget", t(9), t(5)),
        3: ("assigned", "budget", t(9), None),
        4: ("referred", "urban", t(20), None),
        5: ("acknowledged", None, None, None),
        6: ("referred", "budget", t(20), None),  # loaded without its events
    }
    for n, (status, department, due, answered) in cases.items():
        await db.sql(
            "INSERT INTO cases (id, code, intake_key, channel, status, text, language,"
            " received_at, created_at, updated_at, first_response_at, department_id,"
            " referral_due, referral_answered_at) VALUES (:id, :code, :key, 'web', :status,"
            " 'x', 'zh-CN', :at, :at, :updated, :first, :dept, :due, :answered)",
            {"id": n, "code": f"CODE00{n}", "key": f"k{n}", "status": status, "at": t(1),
             "updated": t(10), "first": t(2), "dept": department, "due": due,
             "answered": answered},
        )  # fmt: skip
    referred = '{{"department": "{}", "due": "{}"}}'.format
    events = [
        (1, t(2), "refer", referred("budget", t(4))), (1, t(6), "refer", referred("urban", t(9))),
        (1, t(8), "answer", "{}"), (1, t(9), "resolve", "{}"),
        (2, t(3), "refer", referred("budget", t(9))), (2, t(5), "resolve", "{}"),
        (3, t(3), "refer", referred("budget", t(9))), (3, t(4), "reassign", '{"to": "chen"}'),
        (5, t(3), "resolve", "{}"),
        # Given a later date by the same department before the first passed: extended.
        (4, t(3), "refer", referred("urban", t(12))), (4, t(11), "refer", referred("urban", t(20))),
    ]  # fmt: skip
    for case_id, at, kind, detail in events:
        await db.sql(
            "INSERT INTO events (case_id, at, kind, status, detail) VALUES (:c, :at, :k, 'x', :d)",
            {"c": case_id, "at": at, "k": kind, "d": detail},
        )
    await db.sql(
        "INSERT INTO report_parts (scope, since, until, computed_at, body)"
        " VALUES ('', 'a', 'b', 'c', '{}')"
    )
    expected = [
        (1, "budget", t(2), t(4), None, t(6)),
        (1, "urban", t(6), t(9), t(8), None),
        (2, "budget", t(3), t(9), t(5), None),
        (3, "budget", t(3), t(9), None, t(4)),
        (4, "urban", t(3), t(20), None, None),  # extended once, still open
        (6, "budget", t(2), t(20), None, None),  # from its columns, still open
    ]

    referrals = (
        "SELECT case_id, department_id, referred_at, due, answered_at, ended_at"
        " FROM referrals ORDER BY case_id, id"
    )
    await db.migrate("0013")
    assert await db.rows(referrals) == expected
    assert await db.sql("SELECT count(*) FROM report_parts") == [0]
    await db.migrate("0012", up=False)
    assert not await db.has_table("referrals")
    await db.migrate("0013")
    assert await db.rows(referrals) == expected
    await db.engine.dispose()


async def test_migration_0014_keeps_every_rating_with_its_member_and_goes_back(
    fresh_url: str,
) -> None:
    """Cases stored at 0013, rated: after the upgrade each rating is a row credited to the
    member the case was with when it came (rated low, escalated to the standing head and
    rated again: two, one each; reassigned before the rating: the new member; no member in
    its log: the case's own), a case rated without its events gets the one its columns
    tell, and the months' kept figures are gone. Back at 0013 the table is gone; up again,
    it is filled again."""
    db = Revisions(fresh_url)
    t = "2026-11-{:02d}T03:00:00.000000Z".format
    await db.migrate("0013")
    for member in ("chen", "zhu", "shen"):
        await db.sql(
            "INSERT INTO members (id, name, role) VALUES (:id, :id, 'rep')", {"id": member}
        )
    cases = {1: ("shen", 5, t(6)), 2: ("zhu", 4, t(5)), 3: ("chen", 3, None), 4: ("zhu", 1, t(4)),
             5: ("chen", None, None)}  # fmt: skip
    for n, (member, rating, rated_at) in cases.items():
        await db.sql(
            "INSERT INTO cases (id, code, intake_key, channel, status, text, language,"
            " received_at, created_at, updated_at, assignee_id, rating, rated_at)"
            " VALUES (:id, :code, :key, 'web', 'closed', 'x', 'zh-CN', :at, :at, :updated,"
            " :member, :rating, :rated)",
            {"id": n, "code": f"CODE00{n}", "key": f"k{n}", "at": t(1), "updated": t(10),
             "member": member, "rating": rating, "rated": rated_at},
        )  # fmt: skip
    events = [
        (1, t(1), "assigned", '{"to": "zhu", "reason": "on-duty"}'),
        (1, t(3), "rated", '{"rating": 2, "source": "sms", "escalated_to": "shen"}'),
        (1, t(6), "rated", '{"rating": 5, "source": "sms"}'),
        (2, t(1), "assigned", '{"to": "chen", "reason": "on-duty"}'),
        (2, t(2), "reassign", '{"to": "zhu"}'),
        (2, t(5), "rated", '{"rating": 4, "source": "web"}'),
        (4, t(4), "rated", '{"rating": 1, "source": "sms"}'),  # no member in its log
    ]  # fmt: skip
    for case_id, at, kind, detail in events:
        await db.sql(
            "INSERT INTO events (case_id, at, kind, status, detail) VALUES (:c, :at, :k, 'x', :d)",
            {"c": case_id, "at": at, "k": kind, "d": detail},
        )
    await db.sql(
        "INSERT INTO report_parts (scope, since, until, computed_at, body)"
        " VALUES ('', 'a', 'b', 'c', '{}')"
    )
    expected = [
        (1, t(1), "zhu", 2, t(3)),
        (1, t(1), "shen", 5, t(6)),
        (2, t(1), "zhu", 4, t(5)),
        (3, t(1), "chen", 3, t(10)),  # from its columns: rated when it last changed
        (4, t(1), "zhu", 1, t(4)),
    ]

    ratings = (
        "SELECT case_id, received_at, member_id, rating, rated_at FROM ratings ORDER BY case_id, id"
    )
    await db.migrate("0014")
    assert await db.rows(ratings) == expected
    assert await db.sql("SELECT count(*) FROM report_parts") == [0]
    await db.migrate("0013", up=False)
    assert not await db.has_table("ratings")
    await db.migrate("0014")
    assert await db.rows(ratings) == expected
    await db.engine.dispose()


async def test_migration_0015_drops_the_months_counted_the_old_way(fresh_url: str) -> None:
    """Withdrawn and rejected requests count in the rates now: months kept before are
    counted again (dropped going up, and going back)."""
    db = Revisions(fresh_url)
    await db.migrate("0014")
    keep = (
        "INSERT INTO report_parts (scope, since, until, computed_at, body)"
        " VALUES ('', 'a', 'b', 'c', '{}')"
    )
    await db.sql(keep)
    await db.migrate("0015")
    assert await db.sql("SELECT count(*) FROM report_parts") == [0]
    await db.sql(keep)
    await db.migrate("0014", up=False)
    assert await db.sql("SELECT count(*) FROM report_parts") == [0]
    await db.engine.dispose()


async def test_two_tokens_of_one_name_made_at_once_make_one(stores: list[Store]) -> None:
    """Demo nodes starting together each make the "demo-read" token: one gets it, the
    others are told the name is taken (never a database error)."""
    from hotline.service.tokens import ApiTokens, BadToken

    books = [ApiTokens(store.tokens) for store in stores]
    made = await asyncio.gather(
        *(book.create("demo-read", "read", "demo", NOW) for book in books),
        return_exceptions=True,
    )
    assert sum(isinstance(m, str) for m in made) == 1, made
    assert all(isinstance(m, str) or (isinstance(m, BadToken) and m.field == "name") for m in made)
    assert len([t for t in await books[0].all() if t.revoked_at is None]) == 1


async def test_sqlite_writers_of_several_processes_queue_for_their_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a writer waits for its turn in the kernel (a flock beside the file, held
    here by the test as another process would), and writes once it is given back; a writer
    cancelled while it waits leaves the turn to the next writer of its own process, which
    holds it through its transaction; and a turn not had within TURN_WAIT (its holder
    stopped, say) is waited for no longer: SQLite's own lock decides, as before."""
    from hotline.service.store import database

    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    inside, leave = asyncio.Event(), asyncio.Event()

    def insert(name: str, *, hold: bool = False) -> Any:
        async def apply(tx: Any) -> None:
            await tx.execute(
                "INSERT INTO scheduler_state (name, value) VALUES (:name, '1')", {"name": name}
            )
            if hold:
                inside.set()
                await leave.wait()

        return apply

    other = os.open(tmp_path / "db.sqlite3-writer", os.O_RDONLY)  # another process's turn
    probe = os.open(tmp_path / "db.sqlite3-writer", os.O_RDONLY)

    def turn_taken() -> bool:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False

    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        given_up = asyncio.create_task(store.db.write(insert("given up")))
        await asyncio.sleep(0.05)
        assert not given_up.done()  # waiting for the turn
        given_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await given_up
        waiting = asyncio.create_task(store.db.write(insert("waiting", hold=True)))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        fcntl.flock(other, fcntl.LOCK_UN)  # the other process gives the turn back
        await asyncio.wait_for(inside.wait(), 5)
        for _ in range(5):  # the given-up wait's thread gave its turn back: this one holds it
            assert turn_taken()
            await asyncio.sleep(0.02)
        leave.set()
        await asyncio.wait_for(waiting, 5)
        assert not turn_taken()  # given back after the commit

        monkeypatch.setattr(database, "TURN_WAIT", 0.2)
        fcntl.flock(other, fcntl.LOCK_EX)  # held, and never given back
        await asyncio.wait_for(store.db.write(insert("past the wait")), 5)
        rows = await store.fetch("SELECT name FROM scheduler_state ORDER BY name")
        assert [r["name"] for r in rows] == ["past the wait", "waiting"]
    finally:
        os.close(other)
        os.close(probe)
        await store.close()
