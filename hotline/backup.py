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
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
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
from hotline.service.settings import Settings, make_data_dir
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
            return await queue.backup_snapshot()
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
    a folder of its own and moved into place at the end — a new `dest` in one rename, into
    an empty one (a mount point) file by file with the manifest last — after every file is
    on disk (fsync): a backup that fails (a full disk, Redis unreadable, the machine
    stopping) leaves no folder a restore would take. Readable by its owner only: it holds
    every request's text and phone number."""
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
    (dest.parent if made else dest).mkdir(parents=True, exist_ok=True)
    # A name of its own: two backups at once, or one cut short before, never share it.
    prefix = f".{dest.name}.partial-" if made else ".partial-"
    partial = Path(tempfile.mkdtemp(prefix=prefix, dir=dest.parent if made else dest))
    placed: list[Path] = []  # what this backup put at dest: taken away if it fails
    try:
        manifest = _backup_into(settings, partial, now)
        if made:  # refused if another backup made dest meanwhile
            partial.rename(dest)
            placed.append(dest)
        else:  # the manifest last: a folder without it is no backup
            for path in sorted(partial.iterdir(), key=lambda p: p.name == MANIFEST):
                path.rename(dest / path.name)
                placed.append(dest / path.name)
            partial.rmdir()
        _sync_folder(dest)
        _sync_folder(dest.parent)
    except BaseException as exc:  # nothing half-written stays behind
        shutil.rmtree(partial, ignore_errors=True)
        for path in placed:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
        if isinstance(exc, (OSError, *DatabaseError)):
            raise BackupError(f"cannot back up into {dest}: {_why(exc)}") from exc
        raise
    return manifest


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return {"size": path.stat().st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}


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
    # Every file's size and digest: a restore refuses a backup missing one, cut short or
    # changed since (each file is fsynced first: on disk before the backup is said done).
    files: dict[str, Any] = {}
    for path in sorted(dest.rglob("*")):
        path.chmod(0o700 if path.is_dir() else 0o600)
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[path.relative_to(dest).as_posix()] = _digest(path)
        else:
            _sync_folder(path)
    manifest = {
        "made_at": to_utc_text(now or utcnow()),
        "hotline": __version__,
        "cases": cases,
        "in_flight": len(in_flight),
        "dead_letters": len(dead),
        "spooled": spooled,
        "config": str(settings.config_path),
        "secret_key": secret.exists(),
        "files": files,
    }
    with open(dest / MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    (dest / MANIFEST).chmod(0o600)
    _sync_folder(dest)
    return manifest


def _write_lines(path: Path, entries: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


RESTORING = ".restoring"  # a restore's work in progress, inside the data dir


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore a backup folder into an empty data dir; returns what was restored. The backup
    is checked first (every file its manifest lists, whole and unchanged). It is built in a
    folder of its own inside the data dir (which may be a mount point, as a container's
    volume is) and moved into place at the end, or removed on failure; one restore at a
    time (a lock on the data dir)."""
    if not settings.database_is_sqlite:
        raise BackupError(POSTGRES_BACKUP)
    data = settings.data_dir
    if data.exists() and not data.is_dir():
        raise BackupError(f"{data} is not a folder: HOTLINE_DATA_DIR names a folder")
    made = not data.exists()
    make_data_dir(data)
    lock = os.open(data, os.O_RDONLY)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another restore into {data} is under way") from None
        if any(p.name != RESTORING for p in data.iterdir()):
            raise BackupError(f"{data} is not empty: restore only into an empty data dir")
        return _restore_locked(settings, source, made)
    finally:
        os.close(lock)


def _restore_locked(settings: Settings, source: Path, made: bool) -> dict[str, Any]:
    data = settings.data_dir
    building = data / RESTORING
    moved: list[Path] = []
    try:
        shutil.rmtree(building, ignore_errors=True)  # an earlier restore's, cut short
        manifest = json.loads((source / MANIFEST).read_text("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"{MANIFEST} is not a backup's manifest")
        listed = _verified(source, manifest)
        building.mkdir()
        shutil.copy2(source / DATABASE, building / DATABASE)
        cases = check_database(building / DATABASE)  # the copy: the source is left as it is
        in_flight, spooled = _restore_into(building, source, settings.spool_dir.name, listed)
        for path in building.iterdir():  # the same file system: each a rename
            path.rename(data / path.name)
            moved.append(data / path.name)
        building.rmdir()
        _sync_folder(data)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        shutil.rmtree(building, ignore_errors=True)
        for path in moved:  # this restore's, moved before the failure
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)
        if made:
            shutil.rmtree(data, ignore_errors=True)
        raise BackupError(f"cannot restore {source} into {data}: {_why(exc)}") from exc
    dead = data / DEAD
    return {"cases": cases, "in_flight": in_flight, "spooled": spooled,
            "made_at": manifest.get("made_at"), "config": str(data / CONFIG),
            "secret_key": (data / "secret_key").exists(),
            "dead": str(dead) if dead.exists() and dead.stat().st_size else None}  # fmt: skip


def _verified(source: Path, manifest: dict[str, Any]) -> set[str] | None:
    """The files the manifest lists, each found whole and unchanged (None: a backup made
    before manifests listed them, taken as it is)."""
    files = manifest.get("files")
    if files is None:
        return None
    if not isinstance(files, dict):
        raise ValueError(f"{MANIFEST} is not a backup's manifest (files)")
    for name, kept in files.items():
        if not isinstance(kept, dict) or ".." in Path(name).parts or Path(name).is_absolute():
            raise ValueError(f"{MANIFEST} is not a backup's manifest ({name!r})")
        path = source / name
        if not path.is_file():
            raise ValueError(f"the backup is incomplete: {name} is missing")
        if _digest(path) != {"size": kept.get("size"), "sha256": kept.get("sha256")}:
            raise ValueError(f"{name} is not as it was backed up (cut short or changed)")
    if manifest.get("secret_key") and "secret_key" not in files:
        raise ValueError("the backup is incomplete: secret_key is missing")
    return set(files)


def _why(exc: Exception) -> str:
    """An error in words, naming the file it is about."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc) or type(exc).__name__


def _restore_into(
    data: Path, source: Path, spool_name: str, listed: set[str] | None
) -> tuple[int, int]:
    """The backup's spool, config and key copied, its stream snapshot turned into spool
    files; returns (in-flight intakes, spooled ones). With `listed`, only the spool files
    the manifest lists (one put there since is none of the backup's)."""
    spool = data / spool_name
    spooled = 0
    if (source / "spool").is_dir():
        spool.mkdir(parents=True, exist_ok=True)
        for path in (source / "spool").glob("*.json"):
            if listed is None or f"spool/{path.name}" in listed:
                shutil.copy2(path, spool / path.name)
                spooled += 1
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
    return in_flight, spooled
