"""hotline backup while the service takes traffic, and hotline restore into an empty data dir:
every case, event and outbox row comes back, and intakes still in flight become their cases."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
        assert not (tmp_path / "backup" / ".partial").exists()
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
