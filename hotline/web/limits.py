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


def client_address(request: web.Request) -> str:
    """The client's address (behind a trusted proxy, the one it reported)."""
    return request.remote or "unknown"


async def refuse_if_guessing(request: web.Request) -> None:
    key = keys.TRACK_MISSES + client_address(request)
    with contextlib.suppress(*REDIS_DOWN):
        redis = request.app[appkeys.REDIS]
        misses = int(await redis.get(key) or 0)
        if misses >= TRACK_MISSES:
            wait = max(1, int(await redis.ttl(key)))
            raise web.HTTPTooManyRequests(
                text=N_("Too many unknown codes from your address: try again later."),
                headers={"Retry-After": str(wait)},
            )


async def count_miss(request: web.Request) -> None:
    key = keys.TRACK_MISSES + client_address(request)
    with contextlib.suppress(*REDIS_DOWN):
        async with request.app[appkeys.REDIS].pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=TRACK_WINDOW, nx=True)  # the window starts at the first miss
            pipe.incr(key)  # keeps the TTL
            await pipe.execute()
