"""Console sign-in: server-side sessions in Redis, login rate limits, CSRF, roles.

A session is a random token in an HttpOnly cookie; Redis keeps only its SHA-256, so a leaked
Redis dump holds no usable cookie. Sessions expire after IDLE without use and ABSOLUTE after
sign-in, and are bound to the member's password version: a password change signs out every
session of that member.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.accounts import Session, account
from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.i18n import N_
from hotline.service.store.accounts import Account
from hotline.web.cookies import same, token_cookie
from hotline.web.forms import read_form

COOKIE = "hotline_session"
IDLE = timedelta(hours=2)
ABSOLUTE = timedelta(hours=12)
FAIL_LIMIT = 10  # failures per account in the window...
ADDRESS_LIMIT = 50  # ...and per address (an office behind one NAT signs in together)
FAIL_WINDOW = timedelta(minutes=15)
HEADS = ("head", "admin")


def _key(token: str) -> str:
    return keys.SESSION + hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    request: web.Request, member: Account, response: web.StreamResponse
) -> None:
    """A fresh session id at every sign-in; any session the browser had is ended."""
    redis = request.app[appkeys.REDIS]
    old = token_cookie(request, COOKIE)
    if old:
        await redis.delete(_key(old))
    token = secrets.token_urlsafe(32)
    now = request.app[appkeys.CLOCK]()
    key = _key(token)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "member": member.id,
                "created": to_utc_text(now),
                "seen": to_utc_text(now),
                "csrf": secrets.token_urlsafe(24),
                "pwv": member.password_changed_at or "",
            },
        )
        pipe.expire(key, int(IDLE.total_seconds()))
        pipe.sadd(keys.MEMBER_SESSIONS + member.id, key)
        pipe.expire(keys.MEMBER_SESSIONS + member.id, int(ABSOLUTE.total_seconds()))
        await pipe.execute()
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        secure=request.app[appkeys.SETTINGS].secure_cookies,
        path="/",
        max_age=int(ABSOLUTE.total_seconds()),
    )


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    token = token_cookie(request, COOKIE)
    if token:
        await request.app[appkeys.REDIS].delete(_key(token))
    response.del_cookie(COOKIE, path="/")


async def revoke_all(request: web.Request, member_id: str) -> None:
    """End every session of a member (after a password change)."""
    redis = request.app[appkeys.REDIS]
    index = keys.MEMBER_SESSIONS + member_id
    session_keys = await redis.smembers(index)
    if session_keys:
        await redis.delete(*session_keys)
    await redis.delete(index)


async def _read(request: web.Request, key: str) -> tuple[Session, datetime] | None:
    """The session stored at `key` and when it began, if it is still valid (an ended one
    is deleted); nothing is renewed."""
    redis = request.app[appkeys.REDIS]
    raw: Any = await redis.hgetall(key)
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    if not {"member", "created", "seen", "csrf"} <= data.keys():
        await redis.delete(key)  # a session ended while this request was renewing it
        return None
    now = request.app[appkeys.CLOCK]()
    created, seen = from_utc_text(data["created"]), from_utc_text(data["seen"])
    member = await account(request.app[appkeys.STORE], data["member"])
    valid = (
        member is not None
        and member.active
        and now - created < ABSOLUTE
        and now - seen < IDLE
        and (member.password_changed_at or "") == data.get("pwv", "")
    )
    if not valid or member is None:
        await redis.delete(key)
        return None
    return Session(key, member, data["csrf"]), created


async def still_signed_in(request: web.Request, session: Session) -> bool:
    """Whether `session` is still valid (not signed out, expired, or its member's password
    changed or account closed since), without counting this look as use: a console page
    left open does not keep its session alive."""
    return await _read(request, session.key) is not None


async def current_session(request: web.Request) -> Session | None:
    token = token_cookie(request, COOKIE)
    if not token:
        return None
    found = await _read(request, _key(token))
    if found is None:
        return None
    session, created = found
    redis = request.app[appkeys.REDIS]
    key = session.key
    now = request.app[appkeys.CLOCK]()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, "seen", to_utc_text(now))
        remaining = ABSOLUTE - (now - created)
        pipe.expire(key, int(min(IDLE, remaining).total_seconds()) + 1)
        await pipe.execute()
    return session


# -- login rate limits: sliding window of failures per account and per address ----------


def _fail_keys(member_id: str, address: str) -> list[str]:
    return [keys.LOGIN_FAILURES + "member:" + member_id, keys.LOGIN_FAILURES + "ip:" + address]


# One atomic step: drop attempts older than the window; if either key already holds the limit,
# answer how long until its oldest attempt leaves the window; else count this attempt in both.
# Counting *before* the password is checked is what makes 60 parallel guesses get 429s.
_ATTEMPT = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local limits = {tonumber(ARGV[3]), tonumber(ARGV[5])}
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, 0, now - window)
  if redis.call('ZCARD', key) >= limits[i] then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, math.ceil(window) + 60)
end
return '0'
"""


async def begin_attempt(request: web.Request, member_id: str, address: str) -> tuple[str, int]:
    """Count a sign-in attempt before the password is checked. Returns (attempt id, seconds
    to wait); a wait above 0 means refused, and nothing was counted."""
    attempt = secrets.token_hex(8)
    now = request.app[appkeys.CLOCK]().timestamp()
    window = FAIL_WINDOW.total_seconds()
    script = request.app[appkeys.REDIS].register_script(_ATTEMPT)
    wait = float(await script(keys=_fail_keys(member_id, address),
                              args=[now, window, FAIL_LIMIT, attempt, ADDRESS_LIMIT]))  # fmt: skip
    return attempt, max(1, math.ceil(wait)) if wait > 0 else 0


async def attempt_succeeded(
    request: web.Request, member_id: str, address: str, attempt: str
) -> None:
    """A right password: this attempt is not a failure after all."""
    async with request.app[appkeys.REDIS].pipeline(transaction=True) as pipe:
        for key in _fail_keys(member_id, address):
            pipe.zrem(key, attempt)
        await pipe.execute()


# -- guards ---------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_CONSOLE = ("/console/login",)


@web.middleware
async def console_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console pages need a session; state changes there need the session's CSRF token."""
    if not request.path.startswith("/console") or request.path in PUBLIC_CONSOLE:
        return await handler(request)
    try:
        session = await current_session(request)
    except REDIS_DOWN:
        raise web.HTTPServiceUnavailable(
            text=N_("The console is unavailable for a moment: sessions cannot be read."),
            headers={"Retry-After": "10"},
        ) from None
    if session is None:
        if request.method == "GET" and "text/event-stream" not in request.headers.get("Accept", ""):
            login = request.app.router["console-login"].url_for().with_query(next=request.path_qs)
            raise web.HTTPSeeOther(login)
        raise web.HTTPUnauthorized(text=N_("sign in first"))
    request[appkeys.SESSION] = session
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        form = await read_form(request)
        token = form.get("csrf_token")
        if not isinstance(token, str) or not same(token, session.csrf):
            raise web.HTTPForbidden(text="csrf_token: " + N_("missing or wrong; reload the page"))
    return await handler(request)


def require_head(request: web.Request) -> Session:
    session = request[appkeys.SESSION]
    if session.member.role not in HEADS:
        raise web.HTTPForbidden(text=N_("Only the point's heads and admins can do this."))
    return session
