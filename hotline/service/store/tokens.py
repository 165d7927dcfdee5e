"""API tokens: a name, a scope (read or write) and the SHA-256 of the secret; never the
secret itself. A name belongs to one active token at a time."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.service.store.database import Conn, Database


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    scope: str
    created_by: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


_SELECT = "SELECT id, name, scope, created_by, created_at, revoked_at, last_used_at FROM api_tokens"


class TokenRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, name: str, scope: str, token_hash: str, actor: str, at: str) -> int | None:
        """The new token's id; None when an active token has this name."""

        async def write(db: Conn) -> int | None:
            # The partial unique index decides, also between two processes at once.
            token_id = await db.scalar(
                "INSERT INTO api_tokens (name, scope, token_hash, created_by, created_at)"
                " VALUES (:name, :scope, :hash, :actor, :at)"
                " ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING id",
                {"name": name, "scope": scope, "hash": token_hash, "actor": actor, "at": at},
            )
            return None if token_id is None else int(token_id)

        return await self.db.write(write)

    async def active(self, token_hash: str) -> ApiToken | None:
        row = await self.db.fetch_one(
            f"{_SELECT} WHERE token_hash = :hash AND revoked_at IS NULL", {"hash": token_hash}
        )
        return ApiToken(**row) if row else None

    async def all(self) -> list[ApiToken]:
        return [ApiToken(**r) for r in await self.db.fetch(f"{_SELECT} ORDER BY id")]

    async def revoke(self, name: str, actor: str, at: str) -> bool:
        async def write(db: Conn) -> bool:
            changed = await db.execute(
                "UPDATE api_tokens SET revoked_at = :at, revoked_by = :actor"
                " WHERE name = :name AND revoked_at IS NULL",
                {"name": name, "actor": actor, "at": at},
            )
            return changed == 1

        return await self.db.write(write)

    async def used(self, token_id: int, at: str) -> None:
        """Note when a token was last used (at most once a minute: the caller decides)."""

        async def write(db: Conn) -> None:
            await db.execute(
                "UPDATE api_tokens SET last_used_at = :at WHERE id = :id",
                {"id": token_id, "at": at},
            )

        await self.db.write(write, guarded=True)
