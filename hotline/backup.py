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
import json
import shutil
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
from hotline.service.store.database import backup_database, check_database

DATABASE = "hotline.sqlite3"
INTAKE = "intake.jsonl"
CONFIG = "point.toml"
MANIFEST = "manifest.json"


class BackupError(Exception):
    pass


def _redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    embedded = EmbeddedRedis(settings.redis_dir)
    if not embedded.socket_path.exists():
        raise BackupError(
            "no Redis to read: set HOTLINE_REDIS_URL, or run `hotline serve` on"
            f" {settings.data_dir}"
        )
    return embedded.url


async def _snapshot(settings: Settings) -> list[dict[str, str]]:
    client = redis.Redis.from_url(_redis_url(settings), socket_connect_timeout=3, socket_timeout=10)
    try:
        return await IntakeQueue(client, settings.spool_dir).snapshot()
    except REDIS_DOWN as exc:
        raise BackupError(
            f"Redis cannot be read ({exc}): in-flight requests would be missed"
        ) from exc
    finally:
        await client.aclose()


def backup(settings: Settings, dest: Path, *, now: datetime | None = None) -> dict[str, Any]:
    """Write a backup folder at `dest` (new or empty); returns its manifest."""
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    if not settings.database_path.exists():
        raise BackupError(f"no database at {settings.database_path}")
    dest.mkdir(parents=True, exist_ok=True)
    in_flight = asyncio.run(_snapshot(settings))  # first: see the module's docstring
    spooled = 0
    if settings.spool_dir.is_dir():
        for path in settings.spool_dir.glob("*.json"):
            (dest / "spool").mkdir(exist_ok=True)
            shutil.copy2(path, dest / "spool" / path.name)
            spooled += 1
    with open(dest / INTAKE, "w", encoding="utf-8") as f:
        for entry in in_flight:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
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
        "spooled": spooled,
        "config": str(settings.config_path),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


def restore(settings: Settings, source: Path) -> dict[str, Any]:
    """Restore a backup folder into an empty data dir; returns what was restored."""
    data = settings.data_dir
    if data.exists() and any(data.iterdir()):
        raise BackupError(f"{data} is not empty: restore only into an empty data dir")
    try:
        manifest = json.loads((source / MANIFEST).read_text("utf-8"))
        cases = check_database(source / DATABASE)
    except (OSError, ValueError, RuntimeError) as exc:
        raise BackupError(f"{source} is not a usable backup: {exc}") from exc
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / DATABASE, settings.database_path)
    if (source / "spool").is_dir():
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        for path in (source / "spool").glob("*.json"):
            shutil.copy2(path, settings.spool_dir / path.name)
    in_flight = 0
    with open(source / INTAKE, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            intake = Intake.from_json(entry["intake"])
            write_spool(settings.spool_dir, entry["code"], intake, entry.get("kind", "case"))
            in_flight += 1
    shutil.copy2(source / CONFIG, data / CONFIG)
    if (source / "secret_key").exists():
        shutil.copy2(source / "secret_key", data / "secret_key")
        (data / "secret_key").chmod(0o600)
    return {"cases": cases, "in_flight": in_flight, "made_at": manifest.get("made_at"),
            "config": str(data / CONFIG)}  # fmt: skip
