"""Marks of timed work (e.g. the last shift handed over), moved by one worker at a time."""

from __future__ import annotations

from hotline.service.store.database import Conn, Database


class SchedulerRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def mark(self, name: str) -> str | None:
        row = await self.db.fetch_one(
            "SELECT value FROM scheduler_state WHERE name = :name", {"name": name}
        )
        return str(row["value"]) if row else None

    async def move(self, name: str, old: str | None, new: str) -> bool:
        """Move a mark from `old` to `new`; True for the one worker that did."""

        async def write(db: Conn) -> bool:
            if old is None:
                moved = await db.scalar(
                    "INSERT INTO scheduler_state (name, value) VALUES (:name, :new)"
                    " ON CONFLICT (name) DO NOTHING RETURNING name",
                    {"name": name, "new": new},
                )
            else:
                moved = await db.scalar(
                    "UPDATE scheduler_state SET value = :new WHERE name = :name AND value = :old"
                    " RETURNING name",
                    {"new": new, "name": name, "old": old},
                )
            return moved is not None

        return await self.db.write(write)
