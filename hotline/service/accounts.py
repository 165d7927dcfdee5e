"""Members' passwords: argon2id hashes, set from the command line or the console.

The hasher is built on first use from the setting HOTLINE_ARGON2_PROFILE (one of argon2-cffi's
profiles: the RFC 9106 low-memory one by default), so importing this module costs nothing and
tests can choose the cheapest profile through the same setting production uses. A hash keeps
its own parameters, so hashes made under any profile still verify."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from hotline.service.cases import to_utc_text
from hotline.service.store import Store
from hotline.service.store.accounts import Account

MIN_LENGTH = 10
MAX_LENGTH = 200
PROFILES = ("RFC_9106_LOW_MEMORY", "RFC_9106_HIGH_MEMORY", "CHEAPEST")
DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"


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


class Passwords:
    """Hashing and checking members' passwords, with the parameters of one argon2 profile."""

    def __init__(self, profile: str = DEFAULT_PROFILE) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown argon2 profile {profile!r}: one of {', '.join(PROFILES)}")
        self.profile = profile

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher.from_parameters(getattr(profiles, self.profile))

    @cached_property
    def _dummy(self) -> str:
        # Compared against when the account has no password, so both paths take as long.
        return self._hasher.hash("no password set for this account")

    async def hash_new(self, password: str) -> str:
        """The argon2id hash of an acceptable new password (ValueError when it is not)."""
        check_new_password(password)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def set(self, store: Store, member_id: str, password: str, now: datetime) -> str:
        """Hash and store a new password; returns the new version sessions are bound to."""
        hashed = await self.hash_new(password)
        return await store.accounts.set_password(member_id, hashed, to_utc_text(now))

    async def verify(self, store: Store, member_id: str, password: str) -> Account | None:
        """The account if the password is right and the member active; else None (in
        constant work whether or not the account exists)."""
        found = await store.accounts.get(member_id)
        hashed = found.password_hash if found and found.password_hash else None
        hasher = self._hasher
        ok: bool
        try:
            ok = bool(await asyncio.to_thread(hasher.verify, hashed or self._dummy, password))
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or found is None or not found.active or not hashed:
            return None
        return found


async def account(store: Store, member_id: str) -> Account | None:
    return await store.accounts.get(member_id)
