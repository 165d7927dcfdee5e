"""Liveness and readiness: /healthz says the process and its consumers are turning over (a
worker with a stalled router is not alive; `serve` asks its worker child's own /healthz),
/readyz that Redis and the database answer."""

from __future__ import annotations

import asyncio

from aiohttp import web

from hotline import appkeys
from hotline.queue.errors import REDIS_DOWN

STALLED = 30.0  # seconds without a turn of a consumer's loop: not alive


async def healthz(request: web.Request) -> web.StreamResponse:
    now = asyncio.get_running_loop().time()
    stalled = [c.group for c in request.app[appkeys.CONSUMERS] if c.stalled(now, STALLED)]
    child = request.app.get(appkeys.WORKER_PROCESS)
    if child is not None and child.stalled(now, STALLED):
        stalled.append("worker process")
    elif child is not None:  # alive: is it turning over? (its own /healthz)
        stalled += child.reported(now, STALLED)
    if stalled:
        return web.json_response({"status": "stalled", "consumers": stalled}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    problems = {}
    try:
        await request.app[appkeys.REDIS].ping()
    except REDIS_DOWN as exc:
        problems["redis"] = str(exc)
    try:
        await request.app[appkeys.STORE].cases.any()
    except Exception as exc:
        problems["database"] = str(exc)
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


def setup_health(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
