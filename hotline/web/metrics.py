"""GET /metrics in Prometheus's text format; every process serves its own (`hotline worker`
on its health port). With HOTLINE_METRICS_TOKEN set, a scrape must bring it as a bearer token.
Also counts the intake a channel refused (any 4xx on an intake route)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from redis.exceptions import ResponseError

from hotline import appkeys
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.i18n import N_
from hotline.web.cookies import same

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Intake routes and the channel each one is; a 4xx there is a refused request.
INTAKE_ROUTES = {"/submit": "web", "/sms/twilio": "sms", "/kiosk": "kiosk"}
# What `serve`'s worker child does in the default layout, where `serve` runs no router of
# its own: the child's figures (from its /metrics on its loopback health port) stand in
# for `serve`'s, which stay empty.
WORKER_FAMILIES = frozenset(
    {"hotline_router_batch_size", "hotline_router_store_seconds",
     "hotline_receipt_to_stored_seconds"}
)  # fmt: skip


@web.middleware
async def count_refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    channel = INTAKE_ROUTES.get(request.path) if request.method == "POST" else None
    if channel is None:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if 400 <= exc.status < 500:
            request.app[appkeys.METRICS].intake_answered(channel, "refused")
        raise
    if 400 <= response.status < 500:
        request.app[appkeys.METRICS].intake_answered(channel, "refused")
    return response


def _authorized(request: web.Request) -> bool:
    token = request.app[appkeys.SETTINGS].metrics_token
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and same(given.strip(), token)


async def metrics(request: web.Request) -> web.StreamResponse:
    if not _authorized(request):
        raise web.HTTPUnauthorized(
            text=N_("Authorization: a bearer token (HOTLINE_METRICS_TOKEN) is required"),
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    app = request.app
    m = app[appkeys.METRICS]
    m.live_clients.set(app[appkeys.LIVE].count() if appkeys.LIVE in app else 0)
    m.spool_files.set(len(app[appkeys.INTAKE].spooled()))
    redis = app[appkeys.REDIS]
    try:
        m.code_filter_ready.set(int(bool(await redis.exists(keys.CODE_FILTER_READY))))
        m.code_filter_fill.set(await redis.bitcount(keys.CODE_FILTER) / keys.CODE_FILTER_BITS)
        for stream, group in (
            (keys.INTAKE_STREAM, keys.ROUTER_GROUP),
            (keys.OUTBOUND_STREAM, keys.SENDER_GROUP),
        ):
            m.stream_length.labels(stream=stream).set(await redis.xlen(stream))
            pending = await redis.xpending(stream, group) if await redis.exists(stream) else {}
            m.pending.labels(stream=stream).set(int(pending.get("pending", 0)) if pending else 0)
        for stream in (keys.INTAKE_DEAD, keys.OUTBOUND_DEAD):
            m.dead_letters.labels(stream=stream).set(await redis.xlen(stream))
        m.up.labels(backend="redis").set(1)
    except REDIS_DOWN:
        m.up.labels(backend="redis").set(0)
    except ResponseError as exc:  # a group not made yet: XPENDING answers NOGROUP
        if "NOGROUP" not in str(exc):
            raise
        m.up.labels(backend="redis").set(1)
    store = app[appkeys.STORE]
    try:
        for status, count in (await store.outbox.by_status()).items():
            m.outbox.labels(status=status).set(count)
        m.open_cases.clear()
        for status, count in (await store.cases.open_by_status()).items():
            m.open_cases.labels(status=status).set(count)
        m.overdue_referrals.set(await store.cases.overdue_referrals(app[appkeys.CLOCK]()))
        m.up.labels(backend="database").set(1)
    except Exception:  # the database is down: say so in the figures, never a 500
        m.up.labels(backend="database").set(0)
    registry = m.registry
    if appkeys.WORKER_PROCESS in app:  # serve's default layout: the router is its child's
        worker = await _worker_families(app)
        m.up.labels(backend="worker").set(0 if worker is None else 1)
        if worker is not None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_WithWorker(m.registry, worker))
    # The format the scraper asks for (its Accept header), as prometheus-client negotiates.
    try:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    except (TypeError, ValueError):  # a version it cannot read ("version=x"): the plain text
        encode, content_type = choose_encoder("")
    return web.Response(body=encode(registry), headers={"Content-Type": content_type})


class _WithWorker(Collector):
    """This process's families, with the worker child's in place of the ones it owns."""

    def __init__(self, own: CollectorRegistry, worker: list[Metric]) -> None:
        self.own = own
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        taken = {family.name for family in self.worker}
        yield from (family for family in self.own.collect() if family.name not in taken)
        yield from self.worker


async def _worker_families(app: web.Application) -> list[Metric] | None:
    """The worker child's router figures; None when it did not answer with them."""
    child = app[appkeys.WORKER_PROCESS]
    token = app[appkeys.SETTINGS].metrics_token
    answer = await child.get("/metrics", {"Authorization": f"Bearer {token}"} if token else None)
    if answer is None or answer[0] != 200:
        return None
    try:
        found = text_string_to_metric_families(answer[1].decode())
        return [family for family in found if family.name in WORKER_FAMILIES]
    except (ValueError, UnicodeDecodeError):
        return None


def setup_metrics(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics, name="metrics")
