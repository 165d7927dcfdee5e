"""Canned replies: texts heads keep ready for members to send."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.service.store.database import Conn, Database


@dataclass(frozen=True)
class CannedReply:
    id: int
    title: str
    body: str
    updated_by: str
    updated_at: str


class ReplyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[CannedReply]:
        rows = await self.db.fetch(
            "SELECT id, title, body, updated_by, updated_at FROM canned_replies ORDER BY title"
        )
        return [CannedReply(**r) for r in rows]

    async def add(self, title: str, body: str, actor: str, at: str) -> None:
        async def write(db: Conn) -> None:
            await db.execute(
                "INSERT INTO canned_replies (title, body, updated_by, updated_at)"
                " VALUES (:title, :body, :actor, :at)",
                {"title": title, "body": body, "actor": actor, "at": at},
            )

        await self.db.write(write)

    async def change(self, reply_id: int, title: str, body: str, actor: str, at: str) -> bool:
        """False when the reply is gone."""

        async def write(db: Conn) -> bool:
            changed = await db.execute(
                "UPDATE canned_replies SET title = :title, body = :body, updated_by = :actor,"
                " updated_at = :at WHERE id = :id",
                {"title": title, "body": body, "actor": actor, "at": at, "id": reply_id},
            )
            return changed == 1

        return await self.db.write(write)

    async def delete(self, reply_id: int) -> bool:
        async def write(db: Conn) -> bool:
            changed = await db.execute(
                "DELETE FROM canned_replies WHERE id = :id", {"id": reply_id}
            )
            return changed == 1

        return await self.db.write(write)
