"""Kiosk devices (registered by heads; a device token lets a browser submit and nothing
else) and the source tags printed on QR-code posters."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import aiosqlite

from hotline.service.cases import to_utc_text
from hotline.service.store import Store

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    created_by: str
    created_at: str
    revoked_at: str | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Kiosks:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def register(self, name: str, actor: str, now: datetime) -> tuple[int, str]:
        """A new device; its token is returned once and only its hash is kept."""
        name = name.strip()
        if not name or len(name) > 100:
            raise ValueError("name: 1 to 100 characters")
        token = secrets.token_urlsafe(32)

        async def write(db: aiosqlite.Connection) -> int:
            cur = await db.execute(
                "INSERT INTO kiosk_devices (name, token_hash, created_by, created_at)"
                " VALUES (?, ?, ?, ?)",
                (name, _hash(token), actor, to_utc_text(now)),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

        return await self.store.write(write), token

    async def device(self, token: str | None) -> Device | None:
        """The active device a token belongs to, if any."""
        if not token or len(token) > 100:
            return None
        rows = await self.store.fetch(
            "SELECT id, name, created_by, created_at, revoked_at FROM kiosk_devices"
            " WHERE token_hash = ? AND revoked_at IS NULL",
            (_hash(token),),
        )
        return Device(*rows[0]) if rows else None

    async def devices(self) -> list[Device]:
        rows = await self.store.fetch(
            "SELECT id, name, created_by, created_at, revoked_at FROM kiosk_devices ORDER BY id"
        )
        return [Device(*r) for r in rows]

    async def revoke(self, device_id: int, actor: str, now: datetime) -> bool:
        async def write(db: aiosqlite.Connection) -> bool:
            cur = await db.execute(
                "UPDATE kiosk_devices SET revoked_by = ?, revoked_at = ?"
                " WHERE id = ? AND revoked_at IS NULL",
                (actor, to_utc_text(now), device_id),
            )
            return cur.rowcount == 1

        return await self.store.write(write)

    async def add_tag(self, tag: str, label: str, actor: str, now: datetime) -> str:
        tag = tag.strip().lower()
        label = label.strip()
        if not _TAG.match(tag):
            raise ValueError("tag: lowercase letters, digits, - or _ (at most 64)")
        if not label or len(label) > 100:
            raise ValueError("label: 1 to 100 characters")

        async def write(db: aiosqlite.Connection) -> bool:
            cur = await db.execute(
                "INSERT INTO source_tags (tag, label, created_by, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tag) DO NOTHING",
                (tag, label, actor, to_utc_text(now)),
            )
            return cur.rowcount == 1

        if not await self.store.write(write):
            raise ValueError(f"tag: {tag!r} exists already")
        return tag

    async def tags(self) -> list[tuple[str, str]]:
        rows = await self.store.fetch("SELECT tag, label FROM source_tags ORDER BY tag")
        return [(r["tag"], r["label"]) for r in rows]

    async def tag(self, tag: str) -> tuple[str, str] | None:
        rows = await self.store.fetch("SELECT tag, label FROM source_tags WHERE tag = ?", (tag,))
        return (rows[0]["tag"], rows[0]["label"]) if rows else None
