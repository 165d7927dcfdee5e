"""hotline backup while the service takes traffic, and hotline restore into an empty data dir:
every case, event and outbox row comes back, and intakes still in flight become their cases."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hotline.backup import BackupError, backup, restore
from hotline.queue.intake import write_spool
from hotline.service.cases import Intake
from hotline.service.settings import Settings
from hotline.service.store import Store
from tests.processes import Service


def counts(database: Path) -> tuple[int, int, int]:
    with sqlite3.connect(database) as db:
        return tuple(
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("cases", "events", "outbox")
        )


def hotline(
    *args: str, data_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HOTLINE_DATA_DIR": str(data_dir)} | (env or {})
    env.pop("HOTLINE_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "hotline", *args], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.timeout(120)
def test_backup_under_traffic_and_restore_loses_nothing(tmp_path: Path) -> None:
    live = Service(tmp_path / "live")
    live.start_args = ["--no-worker"]  # intakes stay in the stream: in flight at backup time
    restored: Service | None = None
    try:
        live.start()
        in_flight = [live.submit(f"在途诉求 {i}") for i in range(5)]
        made = hotline("backup", str(tmp_path / "backup"), "--demo", data_dir=live.data_dir)
        assert made.returncode == 0, made.stderr
        manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
        assert not list(tmp_path.glob(".backup.partial-*"))  # built aside, moved in one step
        # Every request's text and phone: readable by its owner only.
        assert (tmp_path / "backup" / "hotline.sqlite3").stat().st_mode & 0o777 == 0o600
        # Into a file, or one that cannot be written: one line, nothing left behind.
        (tmp_path / "a-file").write_text("x")
        into_file = hotline("backup", str(tmp_path / "a-file"), "--demo", data_dir=live.data_dir)
        assert into_file.returncode == 1 and "is a file" in into_file.stderr
        missing = {"HOTLINE_CONFIG": str(tmp_path / "missing.toml")}
        no_config = hotline("backup", str(tmp_path / "nc"), data_dir=live.data_dir, env=missing)
        assert no_config.returncode != 0 and "Traceback" not in no_config.stderr
        assert not (tmp_path / "nc").exists()
        # The demo's four samples, the three raised at its reception, and ours: none routed.
        assert manifest["in_flight"] == 4 + 3 + 5
        during = [live.submit(f"备份后的诉求 {i}") for i in range(3)]  # not in this backup
        before = counts(tmp_path / "backup" / "hotline.sqlite3")
        live.stop()
        # A cold backup of the stopped service reads its Redis files (the AOF) all the same.
        cold = hotline("backup", str(tmp_path / "cold"), "--demo", data_dir=live.data_dir)
        assert cold.returncode == 0, cold.stderr
        cold_manifest = json.loads((tmp_path / "cold" / "manifest.json").read_text())
        assert cold_manifest["in_flight"] == 4 + 3 + 5 + 3

        target = tmp_path / "restored"
        target.mkdir()  # empty, as a container's volume is: restored into, not replaced
        not_empty = hotline("restore", str(tmp_path / "backup"), "--demo", data_dir=live.data_dir)
        assert not_empty.returncode == 1 and "not empty" in not_empty.stderr
        done = hotline("restore", str(tmp_path / "backup"), "--demo", data_dir=target)
        assert done.returncode == 0, done.stderr
        assert not (target / ".restoring").exists()
        assert counts(target / "hotline.sqlite3") == before
        assert (target / "secret_key").read_text() == (live.data_dir / "secret_key").read_text()

        restored = Service(target)
        restored.start()
        for code in in_flight:
            restored.wait_assigned(code)  # handed out before the backup: a case after restore
        for code in during:
            assert restored.get_status(code) == 404
        cases, events, _ = counts(target / "hotline.sqlite3")
        assert cases == before[0] + 4 + 3 + len(in_flight)  # the demo's were in flight too
        assert events > before[1]
    finally:
        for svc in (live, restored):
            if svc and svc.process and svc.process.poll() is None:
                svc.process.kill()
                svc.process.wait()


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{}")
    (tmp_path / "junk" / "hotline.sqlite3").write_bytes(b"not a database")
    done = hotline("restore", str(tmp_path / "junk"), "--demo", data_dir=tmp_path / "d")
    assert done.returncode == 1 and "cannot restore" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())
    # A manifest that is none: refused before anything is put in place (the data dir, here
    # one that exists, as a container's mounted volume does, is left empty), and a folder
    # beside it that happens to be named like a restore's work is not touched.
    (tmp_path / "junk" / "manifest.json").write_text("[1, 2]")
    (tmp_path / "mounted").mkdir()
    (tmp_path / "mounted.restoring").mkdir()
    (tmp_path / "mounted.restoring" / "keep.txt").write_text("mine")
    done = hotline("restore", str(tmp_path / "junk"), "--demo", data_dir=tmp_path / "mounted")
    assert done.returncode == 1 and "is not a backup's manifest" in done.stderr
    assert (tmp_path / "mounted").is_dir() and not any((tmp_path / "mounted").iterdir())
    assert (tmp_path / "mounted.restoring" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_postgresql_is_backed_up_with_its_own_tools(tmp_path: Path, command: str) -> None:
    """hotline backup/restore copy the embedded SQLite; on PostgreSQL they say what to use."""
    done = hotline(
        command, str(tmp_path / "b"), "--demo", data_dir=tmp_path / "d",
        env={"HOTLINE_DATABASE_URL": "postgresql://hotline@db.invalid/hotline"},
    )  # fmt: skip
    assert done.returncode == 1
    assert "pg_dump" in done.stderr and "point-in-time" in done.stderr
    assert not (tmp_path / "b").exists()


def settings_of(data_dir: Path) -> Settings:
    return Settings.from_env({"HOTLINE_DATA_DIR": str(data_dir)}, demo=True, make_secret=False)


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A backup of a data dir with a stored database, a secret key and two spooled intakes
    (no Redis: nothing in flight there)."""
    data = tmp_path / "live"
    data.mkdir()

    async def create() -> None:
        store = await Store.open(data / "hotline.sqlite3")
        await store.close()

    asyncio.run(create())
    (data / "secret_key").write_text("k" * 40)
    for n in range(2):
        intake = Intake(key=f"web:{n}", channel="web", text=f"暂存的诉求 {n}", language="zh",
                        received_at=datetime(2026, 11, 24, 3, tzinfo=UTC))  # fmt: skip
        write_spool(settings_of(data).spool_dir, f"SPOOL{n}A", intake, "case")
    backup(settings_of(data), tmp_path / "backup")
    return tmp_path / "backup"


def redigest(backup_dir: Path, name: str) -> None:
    """The manifest made to agree with a file changed on purpose (a hand-made backup)."""
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    path = backup_dir / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest["files"][name] = {"size": path.stat().st_size, "sha256": digest}
    (backup_dir / "manifest.json").write_text(json.dumps(manifest))


def _future_revision(backup_dir: Path) -> None:
    with sqlite3.connect(backup_dir / "hotline.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    redigest(backup_dir, "hotline.sqlite3")


def _foreign_database(backup_dir: Path) -> None:
    (backup_dir / "hotline.sqlite3").unlink()
    with sqlite3.connect(backup_dir / "hotline.sqlite3") as db:
        db.execute("CREATE TABLE cases (id INTEGER PRIMARY KEY)")
    redigest(backup_dir, "hotline.sqlite3")


def _first_spool(backup_dir: Path) -> Path:
    return sorted((backup_dir / "spool").glob("*.json"))[0]


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (lambda b: shutil.rmtree(b / "spool"), "incomplete: spool/"),
        (lambda b: _first_spool(b).unlink(), "incomplete: spool/"),
        (lambda b: (b / "secret_key").unlink(), "incomplete: secret_key is missing"),
        (lambda b: (b / "hotline.sqlite3").unlink(), "incomplete: hotline.sqlite3 is missing"),
        (lambda b: (b / "point.toml").write_text("[point]\n"), "point.toml is not as it was"),
        (lambda b: (b / "intake.jsonl").write_text("{}\n"), "intake.jsonl is not as it was"),
        (lambda b: _first_spool(b).write_text("{}"), "is not as it was backed up"),
        (_future_revision, "newer than this program knows"),
        (_foreign_database, "not a hotline database"),
    ],
)
def test_restore_refuses_a_backup_missing_a_file_or_changed_since(
    made: Path, tmp_path: Path, spoil: Callable[[Path], object], said: str
) -> None:
    """Each file the manifest lists is there, whole and as backed up, before anything is
    put in place: a backup without its spool would lose requests answered "received"."""
    spoil(made)
    target = tmp_path / "target"
    with pytest.raises(BackupError, match=said):
        restore(settings_of(target), made)
    assert not target.exists()


def test_a_restore_leaves_its_backup_as_it_was_and_takes_only_what_it_lists(
    made: Path, tmp_path: Path
) -> None:
    """The copy is checked, not the backup (read-only media work; nothing is written beside
    the backup's database); a spool file put in the backup since is none of it."""
    (made / "spool" / "planted.json").write_text('{"code": "PLANTED", "kind": "case"}')
    before = sorted(p.name for p in made.rglob("*"))
    target = tmp_path / "target"
    done = restore(settings_of(target), made)
    assert sorted(p.name for p in made.rglob("*")) == before
    assert done["spooled"] == 2 and done["in_flight"] == 0 and done["secret_key"]
    assert not (target / "spool" / "planted.json").exists()
    assert len(list((target / "spool").glob("*.json"))) == 2
    with sqlite3.connect(target / "hotline.sqlite3") as db:  # one file: no WAL beside it
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_one_restore_at_a_time(made: Path, tmp_path: Path) -> None:
    """Two restores into one data dir at once: the second is refused and touches nothing
    (it once deleted what the first had moved in, and said "restored")."""
    target = tmp_path / "target"
    target.mkdir()
    held = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # a restore under way
        with pytest.raises(BackupError, match="another restore"):
            restore(settings_of(target), made)
    finally:
        os.close(held)
    assert restore(settings_of(target), made)["spooled"] == 2


def test_a_backup_into_an_empty_folder_moves_its_manifest_last(
    made: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an existing (mounted) folder the files move one by one: cut short, what moved is
    taken away, and a folder without its manifest is no backup a restore takes."""
    into = tmp_path / "mounted"
    into.mkdir()
    moved: list[str] = []
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        moved.append(self.name)
        if len(moved) == 3:
            raise OSError(28, "No space left on device", str(target))
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(BackupError, match="No space left"):
        backup(settings_of(tmp_path / "live"), into)
    assert into.is_dir() and not any(into.iterdir())
    monkeypatch.undo()
    moved.clear()
    backup(settings_of(tmp_path / "live"), into)
    assert json.loads((into / "manifest.json").read_text())["spooled"] == 2
