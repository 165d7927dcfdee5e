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


async def count_lookup(request: web.Request) -> None:
    """Count this lookup as a miss before looking (atomic, so a burst of parallel guesses
    cannot all slip under the limit); refused once the address has TRACK_MISSES already."""
    key = keys.TRACK_MISSES + client_address(request)
    with contextlib.suppress(*REDIS_DOWN):
        redis = request.app[appkeys.REDIS]
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=TRACK_WINDOW, nx=True)  # the window starts at the first miss
            pipe.incr(key)  # keeps the TTL
            pipe.ttl(key)
            _, misses, ttl = await pipe.execute()
        if int(misses) > TRACK_MISSES:
            raise web.HTTPTooManyRequests(
                text=N_("Too many unknown codes from your address: try again later."),
                headers={"Retry-After": str(max(1, int(ttl)))},
            )


async def refund_lookup(request: web.Request) -> None:
    """The code was known: this lookup was no guess."""
    with contextlib.suppress(*REDIS_DOWN):
        await request.app[appkeys.REDIS].decr(keys.TRACK_MISSES + client_address(request))
