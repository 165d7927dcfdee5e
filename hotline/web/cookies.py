"""Token cookies read defensively: a cookie we set is URL-safe base64; anything else a client
sends (non-ASCII, bytes that are not UTF-8) counts as absent, never as a 500."""

from __future__ import annotations

import hmac
import re

from aiohttp import web

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def token_cookie(request: web.Request, name: str) -> str | None:
    value = request.cookies.get(name)
    return value if value is not None and _TOKEN.fullmatch(value) else None


def same(given: str, expected: str) -> bool:
    """Constant-time comparison of a submitted token with ours, whatever it contains."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
