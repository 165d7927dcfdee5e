"""API tokens for partners and scripts (`hotline token`, the console's Tokens page): a token
is shown once when it is made, and only its SHA-256 is kept. Scope `read` reads; `write`
also makes cases and acts on them."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from hotline.service.cases import to_utc_text
from hotline.service.i18n import N_, Refusal
from hotline.service.store.tokens import ApiToken, TokenRepo

SCOPES = ("read", "write")
PREFIX = "hl_"  # so a token found in a log or a repository is recognised for what it is
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class BadToken(Refusal):
    """A token that cannot be made or revoked as asked: `field` names the input."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiTokens:
    def __init__(self, repo: TokenRepo) -> None:
        self.repo = repo

    async def create(self, name: str, scope: str, actor: str, now: datetime) -> str:
        """A new token's secret (shown this once)."""
        name = name.strip()
        if not _NAME.match(name):
            raise BadToken("name", N_("1 to 64 letters, digits, '.', '_' or '-'"))
        if scope not in SCOPES:
            raise BadToken("scope", N_("read or write"))
        secret = PREFIX + secrets.token_urlsafe(32)
        if await self.repo.add(name, scope, _hash(secret), actor, to_utc_text(now)) is None:
            raise BadToken("name", N_("an active token has this name: revoke it first"))
        return secret

    async def check(self, secret: str | None) -> ApiToken | None:
        """The active token a secret belongs to, if any."""
        if not secret or len(secret) > 200 or not secret.isascii():
            return None
        return await self.repo.active(_hash(secret))

    async def all(self) -> list[ApiToken]:
        return await self.repo.all()

    async def revoke(self, name: str, actor: str, now: datetime) -> None:
        if not await self.repo.revoke(name.strip(), actor, to_utc_text(now)):
            raise BadToken("name", N_("no active token has this name"))
