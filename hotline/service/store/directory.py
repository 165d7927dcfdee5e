"""The console's edits of the directory (one override per entry) and their append-only log."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.overlay import Override
from hotline.service.store.database import Conn, Database, Row


def _override(row: Row) -> Override:
    return Override(
        row["kind"],
        row["key"],
        json.loads(row["record"]) if row["record"] is not None else None,
        row["seq"],
        bool(row["in_file"]),
        row["updated_by"],
        from_utc_text(row["updated_at"]),
    )


def _json(record: dict[str, Any] | None) -> str | None:
    return None if record is None else json.dumps(record, ensure_ascii=False, sort_keys=True)


class DirectoryRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def overrides(self) -> list[Override]:
        rows = await self.db.fetch("SELECT * FROM directory_overrides ORDER BY seq")
        return [_override(r) for r in rows]

    async def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT action, actor, at FROM directory_log WHERE kind = :kind AND key = :key"
            " ORDER BY id DESC",
            {"kind": kind, "key": key},
        )
        return [
            {"action": r["action"], "actor": r["actor"], "at": from_utc_text(r["at"])} for r in rows
        ]


async def overrides_in(db: Conn) -> list[Override]:
    """The stored overrides, read inside the caller's write (the state a check runs against)."""
    return [_override(r) for r in await db.rows("SELECT * FROM directory_overrides ORDER BY seq")]


async def put_override(db: Conn, override: Override) -> None:
    await db.execute(
        "INSERT INTO directory_overrides (kind, key, record, seq, in_file, updated_by,"
        " updated_at) VALUES (:kind, :key, :record, :seq, :in_file, :by, :at)"
        " ON CONFLICT (kind, key) DO UPDATE SET record = excluded.record,"
        " in_file = excluded.in_file, updated_by = excluded.updated_by,"
        " updated_at = excluded.updated_at",
        {
            "kind": override.kind,
            "key": override.key,
            "record": _json(override.record),
            "seq": override.seq,
            "in_file": int(override.in_file),
            "by": override.updated_by,
            "at": to_utc_text(override.updated_at),
        },
    )


async def drop_override(db: Conn, kind: str, key: str) -> None:
    await db.execute(
        "DELETE FROM directory_overrides WHERE kind = :kind AND key = :key",
        {"kind": kind, "key": key},
    )


async def log_change(
    db: Conn,
    kind: str,
    key: str,
    action: str,
    record: dict[str, Any] | None,
    actor: str,
    now: datetime,
) -> None:
    await db.execute(
        "INSERT INTO directory_log (kind, key, action, record, actor, at)"
        " VALUES (:kind, :key, :action, :record, :actor, :at)",
        {
            "kind": kind,
            "key": key,
            "action": action,
            "record": _json(record),
            "actor": actor,
            "at": to_utc_text(now),
        },
    )
