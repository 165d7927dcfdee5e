"""Members as the console knows them: the mirror of the directory's members, with each one's
password hash and the version their sessions are bound to."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from hotline.service.config import Member
from hotline.service.store.database import Conn, Database


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    role: str
    active: bool
    password_hash: str | None
    password_changed_at: str | None  # when, plus a random part: the version sessions bind to


class AccountRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, member_id: str) -> Account | None:
        r = await self.db.fetch_one(
            "SELECT id, name, role, active, password_hash, password_changed_at FROM members"
            " WHERE id = :id",
            {"id": member_id},
        )
        if r is None:
            return None
        return Account(r["id"], r["name"], r["role"], bool(r["active"]), r["password_hash"],
                       r["password_changed_at"])  # fmt: skip

    async def with_password(self) -> set[str]:
        """The members who have a console password."""
        rows = await self.db.fetch("SELECT id FROM members WHERE password_hash IS NOT NULL")
        return {r["id"] for r in rows}

    async def set_password(self, member_id: str, hashed: str | None, stamp: str) -> str:
        return await self.db.write(lambda db: write_password(db, member_id, hashed, stamp))

    async def sync(self, members: Iterable[Member]) -> None:
        """Mirror the config's members; members no longer listed stay, marked inactive."""
        await self.db.write(lambda db: write_members(db, members))


async def write_password(db: Conn, member_id: str, hashed: str | None, stamp: str) -> str:
    """Store a password hash (None: no password) inside the caller's transaction; returns
    the new version sessions are bound to (the time plus a random part, so two changes in
    the same clock tick differ), which ends every session of the member."""
    version = f"{stamp} {secrets.token_hex(6)}"
    changed = await db.execute(
        "UPDATE members SET password_hash = :hash, password_changed_at = :version WHERE id = :id",
        {"hash": hashed, "version": version, "id": member_id},
    )
    if changed != 1:
        raise ValueError(f"no member {member_id!r} in the point config")
    return version


async def write_members(db: Conn, members: Iterable[Member]) -> None:
    """Mirror `members` into the members table, inside the caller's transaction. Members no
    longer listed stay (old cases name them), marked inactive: they cannot sign in."""
    await db.execute("UPDATE members SET active = 0")
    rows = [{"id": m.id, "name": m.name, "phone": m.phone, "role": m.role} for m in members]
    if rows:
        await db.execute(
            "INSERT INTO members (id, name, phone, role, active) VALUES (:id, :name, :phone,"
            " :role, 1) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
            " phone = excluded.phone, role = excluded.role, active = 1",
            rows,
        )
