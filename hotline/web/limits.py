"""Rate limits on public lookups: a client address that asks for too many unknown case codes
is refused for a while (429 with Retry-After). Hits never count, so a submitter checking
their own code is never slowed; while Redis is unreachable nothing is limited."""

from __future__ import annotations

import contextlib

from aiohttp import web

from hotline import appkeys
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.i18n import N_

TRACK_MISSES = 30  # unknown codes per address...
TRACK_WINDOW = 600  # ...per this many seconds
SIGNUPS = 20  # reception sign-ups per address (a park's businesses may share one)...
SIGNUP_WINDOW = 3600  # ...per this many seconds


def client_address(request: web.Request) -> str:
    """The client's address (behind a trusted proxy, the one it reported)."""
    return request.remote or "unknown"


async def _count(request: web.Request, key: str, limit: int, window: int, message: str) -> None:
    """Count one attempt of the client's address before acting (atomic, so a burst of
    parallel ones cannot all slip under the limit); 429 once it had `limit` in the window."""
    with contextlib.suppress(*REDIS_DOWN):
        redis = request.app[appkeys.REDIS]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=window, nx=True)  # the window starts at the first attempt
            pipe.incr(key)  # keeps the TTL
            pipe.ttl(key)
            _, attempts, ttl = await pipe.execute()
        if int(attempts) > limit:
            raise web.HTTPTooManyRequests(
                text=message, headers={"Retry-After": str(max(1, int(ttl)))}
            )


async def count_lookup(request: web.Request) -> None:
    """Count this lookup as a miss before looking; refused once the address has
    TRACK_MISSES already."""
    message = N_("Too many unknown codes from your address: try again later.")
    key = keys.TRACK_MISSES + client_address(request)
    await _count(request, key, TRACK_MISSES, TRACK_WINDOW, message)


async def count_signup(request: web.Request) -> None:
    """A reception sign-up from the public page: SIGNUPS per address per SIGNUP_WINDOW,
    so no one fills an event's places (and texts strangers) from one machine."""
    message = N_("Too many sign-ups from your address: try again later.")
    await _count(request, keys.SIGNUPS + client_address(request), SIGNUPS, SIGNUP_WINDOW, message)


async def refund_lookup(request: web.Request) -> None:
    """The code was known: this lookup was no guess."""
    with contextlib.suppress(*REDIS_DOWN):
        await request.app[appkeys.REDIS].decr(keys.TRACK_MISSES + client_address(request))
