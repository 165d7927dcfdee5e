"""`hotline backup DEST` and `hotline restore SRC`.

A backup is a folder: `hotline.sqlite3` (SQLite's online backup of the live database),
`intake.jsonl` (every intake still in the Redis stream, read *before* the database copy, so
an intake stored meanwhile is in one or both, never in neither), `spool/` (intakes held on
disk while Redis was unreachable), the point config, the secret key when it lives in the data
dir, and `manifest.json`. Restoring into an empty data dir copies the database and turns the
stream snapshot into spool files: the next `hotline serve` pushes them to Redis, and the
router stores each once (it is idempotent on the intake key), so nothing in flight is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from hotline import __version__
from hotline.queue.embedded import EmbeddedRedis
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.intake import IntakeQueue, write_spool
from hotline.service.cases import Intake, to_utc_text, utcnow
from hotline.service.settings import Settings
from hotline.service.store.database import DatabaseError, backup_database, check_database

DATABASE = "hotline.sqlite3"
INTAKE = "intake.jsonl"
DEAD = "intake-dead.jsonl"
CONFIG = "point.toml"
MANIFEST = "manifest.json"


class BackupError(Exception):
    pass


@contextlib.asynccontextmanager
async def redis_of(settings: Settings) -> AsyncIterator[redis.Redis | None]:
    """A client of the service's Redis: `HOTLINE_REDIS_URL`, or the embedded one of the data
    dir — the running service's, or, with none running, a private redis-server started on
    its files (the AOF) for the time of the work. None when the data dir has no Redis yet."""
    started = None
    url = settings.redis_url
    if not url:
        embedded = EmbeddedRedis(settings.redis_dir)
        if not embedded.socket_path.exists():
            if not settings.redis_dir.is_dir():
                yield None
                return
            try:
                await asyncio.to_thread(embedded.start)
            except RuntimeError as exc:  # its files damaged, say: said, not a traceback
                raise BackupError(f"the data dir's Redis cannot be started: {exc}") from exc
            started = embedded
        url = embedded.url
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        yield client
    finally:
        await client.aclose()
        if started is not None:
            await asyncio.to_thread(started.stop)


async def _snapshot(settings: Settings) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The intake stream and its dead letters (see `redis_of`)."""
    async with redis_of(settings) as client:
        if client is None:
            return [], []
        try:
            queue = IntakeQueue(client, settings.spool_dir)
            return await queue.snapshot(), await queue.snapshot(dead=True)
        except REDIS_DOWN as exc:
            raise BackupError(
                f"Redis cannot be read ({exc}): in-flight requests would be missed"
            ) from exc


POSTGRES_BACKUP = (
    "HOTLINE_DATABASE_URL is PostgreSQL: back it up with pg_dump or continuous archiving"
    " (point-in-time recovery), and Redis with its AOF; hotline backup/restore is for the"
    " embedded SQLite setup (see README, Backups)"
)


def backup(settings: Settings, dest: Path, *, now: datetime | None = None) -> dict[str, Any]:
    """Write a backup folder at `dest` (new or empty); returns its manifest. It is written in
    a folder of its own inside `dest` and moved into place at the end: a backup that fails
    (a full disk, Redis unreadable) leaves `dest` as it was. Readable by its owner only: it
    holds every request's text and phone number."""
    if not settings.database_is_sqlite:
        raise BackupError(POSTGRES_BACKUP)
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} is a file: a backup is written into a folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    for needed in (settings.database_path, settings.config_path):
        if not needed.is_file():
            raise BackupError(f"no file {needed}: nothing to back up from it")
    made = not dest.exists()
    partial = dest / ".partial"
    try:
        partial.mkdir(parents=True, mode=0o700)
        manifest = _backup_into(settings, partial, now)
        for path in partial.iterdir():
            path.rename(dest / path.name)
        partial.rmdir()
    except BaseException as exc:  # nothing half-written stays behind
        shutil.rmtree(partial, ignore_errors=True)
        if made:
            shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, (OSError, *DatabaseError)):
            raise BackupError(f"cannot back up into {dest}: {_why(exc)}") from exc
        raise
    return manifest


def _backup_into(settings: Settings, dest: Path, now: datetime | None) -> dict[str, Any]:
    # In the order requests move (spool -> stream -> database), so one moving on meanwhile
    # is caught by the next step: in one or two of them, never in none.
    spooled = 0
    if settings.spool_dir.is_dir():
        for path in settings.spool_dir.glob("*.json"):
            (dest / "spool").mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # pushed to Redis meanwhile
                shutil.copy2(path, dest / "spool" / path.name)
                spooled += 1
    in_flight, dead = asyncio.run(_snapshot(settings))
    _write_lines(dest / INTAKE, in_flight)
    _write_lines(dest / DEAD, dead)
    cases = backup_database(settings.database_path, dest / DATABASE)
    shutil.copy2(settings.config_path, dest / CONFIG)
    secret = settings.data_dir / "secret_key"
    if secret.exists():
        shutil.copy2(secret, dest / "secret_key")
    manifest = {
        "made_at": to_utc_text(now or utcnow()),
        "hotline": __version__,
        "cases": cases,
        "in_flight": len(in_flight),
        "dead_letters": len(dead),
        "spooled": spooled,
        "config": str(settings.config_path),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    for path in dest.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    return manifest


def _write_lines(path: Path, entries: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


RESTORING = ".restoring"  # a restore's work in progress, inside the data dir


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore a backup folder into an empty data dir; returns what was restored. It is built
    in a folder of its own inside the data dir (which may be a mount point, as a container's
    volume is) and moved into place at the end, or removed on failure."""
    if not settings.database_is_sqlite:
        raise BackupError(POSTGRES_BACKUP)
    data = settings.data_dir
    if data.exists() and not data.is_dir():
        raise BackupError(f"{data} is not a folder: HOTLINE_DATA_DIR names a folder")
    if data.is_dir() and any(p.name != RESTORING for p in data.iterdir()):
        raise BackupError(f"{data} is not empty: restore only into an empty data dir")
    made = not data.exists()
    building = data / RESTORING
    try:
        shutil.rmtree(building, ignore_errors=True)  # an earlier restore's, cut short
        manifest = json.loads((source / MANIFEST).read_text("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"{MANIFEST} is not a backup's manifest")
        cases = check_database(source / DATABASE)
        building.mkdir(parents=True)
        in_flight = _restore_into(building, source, settings.spool_dir.name)
        for path in building.iterdir():  # the same file system: each a rename
            path.rename(data / path.name)
        building.rmdir()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        for path in data.iterdir() if data.is_dir() else ():  # any moved before the failure
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        if made:
            shutil.rmtree(data, ignore_errors=True)
        raise BackupError(f"cannot restore {source} into {data}: {_why(exc)}") from exc
    dead = data / DEAD
    return {"cases": cases, "in_flight": in_flight, "made_at": manifest.get("made_at"),
            "config": str(data / CONFIG),
            "dead": str(dead) if dead.exists() and dead.stat().st_size else None}  # fmt: skip


def _why(exc: Exception) -> str:
    """An error in words, naming the file it is about."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc) or type(exc).__name__


def _restore_into(data: Path, source: Path, spool_name: str) -> int:
    shutil.copy2(source / DATABASE, data / DATABASE)
    spool = data / spool_name
    if (source / "spool").is_dir():
        spool.mkdir(parents=True, exist_ok=True)
        for path in (source / "spool").glob("*.json"):
            shutil.copy2(path, spool / path.name)
    in_flight = 0
    with open(source / INTAKE, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            intake = Intake.from_json(entry["intake"])
            write_spool(spool, entry["code"], intake, entry.get("kind", "case"))
            in_flight += 1
    if (source / DEAD).exists():  # failed before the backup: kept for a person to look at
        shutil.copy2(source / DEAD, data / DEAD)
    shutil.copy2(source / CONFIG, data / CONFIG)
    if (source / "secret_key").exists():
        shutil.copy2(source / "secret_key", data / "secret_key")
        (data / "secret_key").chmod(0o600)
    return in_flight
