"""Members' passwords: argon2id hashes, set from the command line or the console."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime

import aiosqlite
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hotline.service.cases import to_utc_text
from hotline.service.store import Store

MIN_LENGTH = 10
MAX_LENGTH = 200
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Compared against when the account has no password, so both paths take as long.
_DUMMY = _hasher.hash("no password set for this account")


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    role: str
    active: bool
    password_hash: str | None
    password_changed_at: str | None  # when, plus a random part: the version sessions bind to


@dataclass(frozen=True)
class Session:
    """A signed-in member's console session."""

    key: str  # the Redis key (it holds the token's hash, never the token)
    member: Account
    csrf: str


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise ValueError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise ValueError(f"a password has at most {MAX_LENGTH} characters")
    if any(ord(ch) < 32 for ch in password):
        raise ValueError("a password cannot contain control characters")


async def account(store: Store, member_id: str) -> Account | None:
    rows = await store.fetch(
        "SELECT id, name, role, active, password_hash, password_changed_at FROM members"
        " WHERE id = ?",
        (member_id,),
    )
    if not rows:
        return None
    r = rows[0]
    return Account(
        r["id"],
        r["name"],
        r["role"],
        bool(r["active"]),
        r["password_hash"],
        r["password_changed_at"],
    )


async def hash_new_password(password: str) -> str:
    """The argon2id hash of an acceptable new password (ValueError when it is not)."""
    check_new_password(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def write_password(
    db: aiosqlite.Connection, member_id: str, hashed: str | None, stamp: str
) -> str:
    """Store a password hash (None: no password) inside the caller's transaction; returns
    the new version sessions are bound to (the time plus a random part, so two changes in
    the same clock tick differ), which ends every session of the member."""
    version = f"{stamp} {secrets.token_hex(6)}"
    cur = await db.execute(
        "UPDATE members SET password_hash = ?, password_changed_at = ? WHERE id = ?",
        (hashed, version, member_id),
    )
    if cur.rowcount != 1:
        raise ValueError(f"no member {member_id!r} in the point config")
    return version


async def set_password(store: Store, member_id: str, password: str, now: datetime) -> str:
    """Hash and store a new password; returns the new version sessions are bound to."""
    hashed = await hash_new_password(password)
    return await store.write(lambda db: write_password(db, member_id, hashed, to_utc_text(now)))


async def verify(store: Store, member_id: str, password: str) -> Account | None:
    """The account if the password is right and the member active; else None (in constant
    work whether or not the account exists)."""
    found = await account(store, member_id)
    hashed = found.password_hash if found and found.password_hash else _DUMMY
    ok: bool
    try:
        ok = bool(await asyncio.to_thread(_hasher.verify, hashed, password))
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or found is None or not found.active or not found.password_hash:
        return None
    return found
