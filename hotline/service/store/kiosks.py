"""Kiosk devices (only a hash of each token is kept) and the source tags of QR-code posters."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.service.store.database import Conn, Database


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    created_by: str
    created_at: str
    revoked_at: str | None


_DEVICE = "SELECT id, name, created_by, created_at, revoked_at FROM kiosk_devices"


class KioskRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_device(self, name: str, token_hash: str, actor: str, at: str) -> int | None:
        """None when a device in use has that name already (letter case aside)."""

        async def write(db: Conn) -> int | None:
            taken = await db.scalar(
                "SELECT count(*) FROM kiosk_devices"
                " WHERE lower(name) = lower(:name) AND revoked_at IS NULL",
                {"name": name},
            )
            if taken:
                return None
            device_id = await db.scalar(
                "INSERT INTO kiosk_devices (name, token_hash, created_by, created_at)"
                " VALUES (:name, :hash, :actor, :at) RETURNING id",
                {"name": name, "hash": token_hash, "actor": actor, "at": at},
            )
            return int(device_id)

        return await self.db.write(write)

    async def active_device(self, token_hash: str) -> Device | None:
        row = await self.db.fetch_one(
            f"{_DEVICE} WHERE token_hash = :hash AND revoked_at IS NULL", {"hash": token_hash}
        )
        return Device(**row) if row else None

    async def devices(self) -> list[Device]:
        return [Device(**r) for r in await self.db.fetch(f"{_DEVICE} ORDER BY id")]

    async def revoke(self, device_id: int, actor: str, at: str) -> bool:
        async def write(db: Conn) -> bool:
            changed = await db.execute(
                "UPDATE kiosk_devices SET revoked_by = :actor, revoked_at = :at"
                " WHERE id = :id AND revoked_at IS NULL",
                {"actor": actor, "at": at, "id": device_id},
            )
            return changed == 1

        return await self.db.write(write)

    async def add_tag(self, tag: str, label: str, actor: str, at: str) -> bool:
        """False when the tag exists already."""

        async def write(db: Conn) -> bool:
            added = await db.scalar(
                "INSERT INTO source_tags (tag, label, created_by, created_at)"
                " VALUES (:tag, :label, :actor, :at) ON CONFLICT (tag) DO NOTHING RETURNING tag",
                {"tag": tag, "label": label, "actor": actor, "at": at},
            )
            return added is not None

        return await self.db.write(write)

    async def tags(self) -> list[tuple[str, str]]:
        rows = await self.db.fetch("SELECT tag, label FROM source_tags ORDER BY tag")
        return [(r["tag"], r["label"]) for r in rows]

    async def tag(self, tag: str) -> tuple[str, str] | None:
        row = await self.db.fetch_one(
            "SELECT tag, label FROM source_tags WHERE tag = :tag", {"tag": tag}
        )
        return (row["tag"], row["label"]) if row else None
