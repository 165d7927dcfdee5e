"""The directory: the config file plus the console's edits, kept across restarts, checked
whole, followed by every process, and logged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis

from hotline.queue.signals import RedisSignals
from hotline.service.accounts import account
from hotline.service.config import demo_config_path, parse_duration
from hotline.service.directory import Directory
from hotline.service.overlay import (
    BACK_IN_FILE,
    GONE_FROM_FILE,
    Actor,
    Changed,
    DirectoryError,
    NotAllowed,
)
from hotline.service.store import Store
from hotline.service.store.database import Conn, DatabaseError

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
HEAD = Actor("shen", "head")
ADMIN = Actor("admin", "admin")
TAX = {"id": "tax", "name": "税务联络组"}
TAX_TOPIC = {"code": "tax", "name": {"zh": "税费政策", "en": "Tax policy"}, "department": "tax"}


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    yield store
    await store.close()


async def opened(store: Store, client: redis.Redis | None, path: Path | None = None) -> Directory:
    directory = Directory.from_file(path or demo_config_path())
    await directory.open(store, RedisSignals(client) if client else None)
    return directory


async def test_edits_are_kept_across_a_restart_and_win_over_the_file(
    store: Store, redis_client: redis.Redis
) -> None:
    first = await opened(store, redis_client)
    await first.save("departments", TAX, HEAD, NOW, new=True)
    await first.save("categories", TAX_TOPIC, HEAD, NOW, new=True)
    await first.save("departments", {"id": "budget", "name": "财经工委"}, HEAD, NOW, new=False)
    await first.remove("categories", "other", HEAD, NOW)
    again = await opened(store, redis_client)
    config = again.config
    assert config.department("tax") is not None and config.category("tax") is not None
    assert config.department("budget").name == "财经工委"  # type: ignore[union-attr]
    assert config.category("other") is None
    # File order is kept for edited entries; added ones come last.
    ids = [d.id for d in config.departments]
    assert ids[0] == "budget" and ids[-1] == "tax"
    origins = {e.key: (e.in_file, e.override is not None) for e in again.entries("categories")}
    assert origins["tax"] == (False, True) and origins["safety"] == (True, False)
    assert origins["other"] == (True, True)  # removed, still listed so it can be restored
    assert next(e for e in again.entries("categories") if e.key == "other").record is None


async def test_an_edit_the_changed_file_no_longer_allows_is_set_aside_whole(
    store: Store, redis_client: redis.Redis, tmp_path: Path
) -> None:
    directory = await opened(store, redis_client)
    await directory.save(
        "categories",
        {"code": "schools", "name": {"zh": "入学", "en": "Schooling"}, "department": "education"},
        HEAD, NOW, new=True,
    )  # fmt: skip
    await directory.save("departments", TAX, HEAD, NOW, new=True)
    # The file drops the education department (and the topic that used it).
    text = demo_config_path().read_text("utf-8")
    text = text.replace('[[departments]]\nid = "education"\nname = "教科文卫工委"\n', "")
    text = text.replace('department = "education"', 'department = "budget"')
    edited = tmp_path / "point.toml"
    edited.write_text(text, "utf-8")
    restarted = await opened(store, redis_client, edited)
    assert restarted.config.category("schools") is None  # set aside, not half-applied
    assert restarted.config.department("tax") is not None  # the other edit still holds
    [entry] = [e for e in restarted.entries("categories") if e.key == "schools"]
    assert entry.problems and "unknown department 'education'" in entry.problems[0]
    # Fixing it in the console puts it back in force.
    fixed = {"code": "schools", "name": {"zh": "入学", "en": "Schooling"}, "department": "tax"}
    await restarted.save("categories", fixed, HEAD, NOW, new=False)
    assert restarted.config.category("schools") is not None
    assert not next(e for e in restarted.entries("categories") if e.key == "schools").problems


async def test_other_processes_follow_a_change(store: Store, redis_client: redis.Redis) -> None:
    here, there = await opened(store, redis_client), await opened(store, redis_client)
    assert not await there.refresh()
    await here.save("departments", TAX, HEAD, NOW, new=True)
    assert there.config.department("tax") is None  # until it refreshes
    assert await there.refresh()
    assert there.config.department("tax") is not None
    # A process that has not refreshed yet still checks against the latest edits.
    await there.save("categories", TAX_TOPIC, HEAD, NOW, new=True)
    await here.refresh()
    with pytest.raises(DirectoryError, match="categories tax refer to tax"):
        await here.remove("departments", "tax", HEAD, NOW)


async def test_a_stale_process_cannot_break_the_config(
    store: Store, redis_client: redis.Redis
) -> None:
    here, there = await opened(store, redis_client), await opened(store, redis_client)
    await here.save("departments", TAX, HEAD, NOW, new=True)
    await redis_client.flushall()  # the version bump is lost: `there` cannot tell
    await there.save("categories", TAX_TOPIC, HEAD, NOW, new=True)  # checked against SQLite
    assert there.config.category("tax") is not None and there.config.department("tax")


async def test_the_members_table_mirrors_the_directory(
    store: Store, redis_client: redis.Redis
) -> None:
    directory = await opened(store, redis_client)
    member = {"id": "li", "name": "李代表", "role": "rep", "companies": ["甲公司"]}
    await directory.save("members", member, HEAD, NOW, new=True)
    found = await account(store, "li")
    assert found is not None and found.active and found.role == "rep"
    await directory.save("members", member | {"role": "head"}, HEAD, NOW, new=False)
    assert (await account(store, "li")).role == "head"  # type: ignore[union-attr]
    await directory.remove("members", "li", HEAD, NOW)
    found = await account(store, "li")
    assert found is not None and not found.active  # kept: old cases still name them


async def test_member_rules(store: Store, redis_client: redis.Redis) -> None:
    directory = await opened(store, redis_client)
    with pytest.raises(NotAllowed):
        await directory.save("members", {"id": "ops", "name": "运维", "role": "admin"}, HEAD, NOW,
                             new=True)  # fmt: skip
    with pytest.raises(NotAllowed):
        await directory.remove("members", "shen", HEAD, NOW)
    with pytest.raises(DirectoryError, match="standing head"):
        await directory.remove("members", "shen", ADMIN, NOW)
    with pytest.raises(DirectoryError, match="duty rotation"):
        await directory.remove("members", "wang", ADMIN, NOW)
    await directory.save("members", {"id": "li", "name": "李", "role": "rep"}, HEAD, NOW, new=True)
    await store.write(
        lambda db: db.execute(
            "INSERT INTO duty_changes (kind, member_id, starts_at, ends_at, note, created_by,"
            " created_at) VALUES ('cover', 'li', :start, :end, '', 'shen', :now)",
            {
                "start": (NOW + timedelta(days=1)).isoformat(),
                "end": (NOW + timedelta(days=2)).isoformat(),
                "now": NOW.isoformat(),
            },
        )
    )
    with pytest.raises(DirectoryError, match="duty overrides still to come"):
        await directory.remove("members", "li", HEAD, NOW)
    # Nor may the phone go that the override needs (added only for a member with one).
    [entry] = [e for e in directory.entries("members") if e.key == "li"]
    assert entry.record is not None
    without_phone = {k: v for k, v in entry.record.items() if k != "phone"}
    with pytest.raises(DirectoryError, match="a member on duty needs a phone"):
        await directory.save("members", without_phone, HEAD, NOW, new=False)
    await directory.remove("members", "li", HEAD, NOW + timedelta(days=3))  # once it is past


async def test_undo_brings_back_the_files_entry(store: Store, redis_client: redis.Redis) -> None:
    directory = await opened(store, redis_client)
    await directory.remove("categories", "other", HEAD, NOW)
    await directory.revert("categories", "other", HEAD, NOW)
    assert directory.config.category("other") is not None
    with pytest.raises(DirectoryError, match="no console edit"):
        await directory.revert("categories", "other", HEAD, NOW)
    await directory.save("departments", TAX, HEAD, NOW, new=True)
    with pytest.raises(DirectoryError, match="no console edit"):
        await directory.revert("departments", "tax", HEAD, NOW)  # not in the file: remove it


async def test_the_log_is_append_only(store: Store, redis_client: redis.Redis) -> None:
    directory = await opened(store, redis_client)
    await directory.save("departments", TAX, HEAD, NOW, new=True)
    await directory.remove("departments", "tax", HEAD, NOW)
    history = await directory.history("departments", "tax")
    assert [h["action"] for h in history] == ["remove", "add"]
    assert all(h["actor"] == "shen" for h in history)
    for sql in ("UPDATE directory_log SET actor = 'x'", "DELETE FROM directory_log"):

        async def tamper(db: Conn, sql: str = sql) -> None:
            await db.execute(sql)

        with pytest.raises(DatabaseError, match="append-only"):
            await store.write(tamper)


async def test_works_without_redis(store: Store) -> None:
    """The command line opens the directory without Redis: edits still apply."""
    await (await opened(store, None)).save("departments", TAX, HEAD, NOW, new=True)
    assert (await opened(store, None)).config.department("tax") is not None


def test_member_password_command_knows_console_members(tmp_path: Path) -> None:
    async def add() -> None:
        store = await Store.open(tmp_path / "hotline.sqlite3")
        try:
            directory = await opened(store, None)
            member = {"id": "li", "name": "李代表", "role": "rep"}
            await directory.save("members", member, HEAD, NOW, new=True)
        finally:
            await store.close()

    asyncio.run(add())
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path)}
    env.pop("HOTLINE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "member", "password", "--demo", "li"],
        input="a-long-enough-pw\n", env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


async def test_checks_run_on_what_is_stored_not_on_a_stale_copy(
    store: Store, redis_client: redis.Redis
) -> None:
    here, there = await opened(store, redis_client), await opened(store, redis_client)
    zhu = {"id": "zhu", "name": "朱代表", "phone": "+8613800000002", "role": "rep"}
    await there.save("members", zhu | {"role": "admin"}, ADMIN, NOW, new=False)
    # `here` has not refreshed: it still thinks zhu is a rep.
    with pytest.raises(NotAllowed):
        await here.save("members", zhu, HEAD, NOW, new=False)
    with pytest.raises(NotAllowed):
        await here.set_password(HEAD, "zhu", "argon2-hash-stand-in", NOW)
    await there.save("departments", TAX, HEAD, NOW, new=True)
    with pytest.raises(DirectoryError, match="already taken"):
        await here.save("departments", TAX | {"name": "税务"}, HEAD, NOW, new=True)
    assert (await opened(store, None)).config.department("tax").name == "税务联络组"  # type: ignore[union-attr]


async def test_a_form_made_before_someone_elses_edit_is_refused(
    store: Store, redis_client: redis.Redis
) -> None:
    directory = await opened(store, redis_client)
    [budget] = [e for e in directory.entries("departments") if e.key == "budget"]
    assert budget.seq == 0  # as in the file
    await directory.save("departments", {"id": "budget", "name": "财经工委"}, ADMIN, NOW,
                         new=False, seen=0)  # fmt: skip
    with pytest.raises(Changed):
        await directory.save("departments", {"id": "budget", "name": "预算"}, HEAD, NOW,
                             new=False, seen=0)  # fmt: skip
    with pytest.raises(Changed):
        await directory.remove("departments", "budget", HEAD, NOW, seen=0)
    assert directory.config.department("budget").name == "财经工委"  # type: ignore[union-attr]


async def test_every_process_ends_up_with_every_change(
    store: Store, redis_client: redis.Redis
) -> None:
    """Two processes writing in turn: neither takes the shared version as its own, so
    neither misses the other's change."""
    a, b = await opened(store, redis_client), await opened(store, redis_client)
    await a.save("departments", TAX, HEAD, NOW, new=True)
    await b.save("departments", {"id": "fin", "name": "金融组"}, HEAD, NOW, new=True)
    for process in (a, b):
        await process.refresh()
        assert process.config.department("tax") and process.config.department("fin")


async def test_editing_an_edit_keeps_its_place(store: Store, redis_client: redis.Redis) -> None:
    directory = await opened(store, redis_client)
    await directory.save("departments", TAX, HEAD, NOW, new=True)
    await directory.save("categories", TAX_TOPIC, HEAD, NOW, new=True)
    await directory.save("departments", TAX | {"name": "税务组"}, HEAD, NOW, new=False)
    [entry] = [e for e in directory.entries("departments") if e.key == "tax"]
    assert entry.seq == 1  # still applied before the topic that refers to it
    assert [c.code for c in directory.config.categories][-1] == "tax"


async def test_a_removed_member_loses_password_and_sessions(
    store: Store, redis_client: redis.Redis
) -> None:
    directory = await opened(store, redis_client)
    member = {"id": "li", "name": "李代表", "role": "rep"}
    await directory.save("members", member, HEAD, NOW, new=True, password_hash="hash-1")
    before = await account(store, "li")
    assert before is not None and before.password_hash == "hash-1"
    await directory.remove("members", "li", HEAD, NOW + timedelta(minutes=1))
    await directory.save("members", member | {"role": "head"}, HEAD, NOW, new=True)
    after = await account(store, "li")
    assert after is not None and after.active and after.password_hash is None
    assert after.password_changed_at != before.password_changed_at  # old sessions are void


async def test_the_file_moving_under_an_edit_sets_it_aside(
    store: Store, redis_client: redis.Redis, tmp_path: Path
) -> None:
    directory = await opened(store, redis_client)
    zhu = {"id": "zhu", "name": "朱代表", "phone": "+8613800000099", "role": "rep"}
    await directory.save("members", zhu, HEAD, NOW, new=False)
    await directory.save("departments", {"id": "tax", "name": "税务"}, HEAD, NOW, new=True)
    await directory.remove("departments", "tax", HEAD, NOW)
    # The file drops zhu (and the rotation with him) and adds a department "tax".
    text = demo_config_path().read_text("utf-8")
    text = text.replace('rotation = ["chen", "zhu", "wang"]', 'rotation = ["chen", "wang"]')
    text = text.replace('[[members]]\nid = "zhu"\nname = "朱代表"\nphone = "+8613800000002"\n'
                        'role = "rep"\n', "")  # fmt: skip
    text += '\n[[departments]]\nid = "tax"\nname = "税务局联络组"\n'
    edited = tmp_path / "point.toml"
    edited.write_text(text, "utf-8")
    restarted = await opened(store, redis_client, edited)
    assert restarted.config.member("zhu") is None  # the console's edit does not keep him
    assert not (await account(store, "zhu")).active  # type: ignore[union-attr]
    [entry] = [e for e in restarted.entries("members") if e.key == "zhu"]
    assert entry.problems == (GONE_FROM_FILE,)
    assert restarted.config.department("tax").name == "税务局联络组"  # type: ignore[union-attr]
    [entry] = [e for e in restarted.entries("departments") if e.key == "tax"]
    assert entry.problems == (BACK_IN_FILE,)


def test_durations_are_capped() -> None:
    assert parse_duration("366d") == timedelta(days=366)
    for text in ("367d", "53w", "99999999999999999999d"):
        with pytest.raises(ValueError, match="longer than a year"):
            parse_duration(text)
