"""The application factory: `create_app(settings)` builds the whole service, resources and all."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from aiohttp import web
from aiohttp.web_middlewares import normalize_path_middleware
from aiohttp_remotes import XForwardedStrict
from itsdangerous import URLSafeTimedSerializer

from hotline import appkeys
from hotline.channels.twilio_rest import TwilioProvider
from hotline.channels.webhooks import HttpPoster
from hotline.queue.children import WorkerProcess
from hotline.queue.embedded import EmbeddedRedis
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.intake import IntakeQueue
from hotline.queue.live import LiveUpdates
from hotline.queue.router import RouterConsumer
from hotline.queue.sender import Sender
from hotline.queue.signals import RedisSignals
from hotline.service.accounts import Passwords, account
from hotline.service.caselists import fill_due_times
from hotline.service.cases import utcnow
from hotline.service.casework import Casework
from hotline.service.config import PointConfig
from hotline.service.delivery import Delivery
from hotline.service.demo import seed_demo_cases, seed_demo_history, seed_demo_receptions
from hotline.service.directory import Directory
from hotline.service.dutybook import DutyBook
from hotline.service.inbound import TextDesk
from hotline.service.kiosks import Kiosks
from hotline.service.links import Links
from hotline.service.metrics import Metrics
from hotline.service.notify import Notifier
from hotline.service.outbox import Outbox
from hotline.service.receptions import Receptions
from hotline.service.replies import CannedReplies
from hotline.service.reports import keep_months
from hotline.service.routing import RoutingPolicy
from hotline.service.sealing import Sealer
from hotline.service.settings import DEMO_PASSWORD, Settings, make_data_dir
from hotline.service.store import Store
from hotline.service.timed import TimedWork
from hotline.service.tokens import ApiTokens, BadToken
from hotline.service.webhooks import WebhookDelivery, Webhooks
from hotline.web.auth import console_guard
from hotline.web.health import setup_health
from hotline.web.metrics import count_refusals, setup_metrics
from hotline.web.middlewares import add_security_headers, error_pages, security_headers
from hotline.web.render import setup_i18n
from hotline.web.routes import setup_routes

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 256 * 1024  # a form with 4000 characters of Chinese is about 40 KiB
DIRECTORY_REFRESH = 2.0  # seconds: how soon other processes follow a directory edit
OPT_OUTS_FOLLOW = 2.0  # seconds: how soon the SMS webhook follows another process's opt-out
UNPROXIED = ("/healthz", "/readyz", "/metrics")  # probes come straight, not via the proxy
REDIS_CONNECTIONS = 64  # per process; live views share one (queue/live.py)
REDIS_POOL_WAIT = 3.0  # seconds a request waits for a free connection
REDIS_WATCH = 1.0  # seconds: how soon a dead embedded redis-server is started again
WORKER_WATCH = 1.0  # seconds: how soon a dead worker process is started again


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    pages: bool = True,
    worker_process: bool = False,
) -> web.Application:
    """Build the app. Nothing starts until it runs; the config is checked here, at once.
    Without `pages` (a worker) it answers only the health checks. With `settings.run_worker`
    the router, sender and timed work run in this process, or with `worker_process` in a
    child `hotline worker` it supervises (what `hotline serve` does)."""
    directory = Directory.from_file(settings.config_path)
    app = web.Application(
        middlewares=[
            security_headers,
            # "/console/" (as people type it) is "/console": redirected, before the guard.
            normalize_path_middleware(append_slash=False, remove_slash=True, merge_slashes=False),
            count_refusals,
            error_pages,
            console_guard,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app.on_response_prepare.append(add_security_headers)
    app[appkeys.SETTINGS] = settings
    app[appkeys.DIRECTORY] = directory
    app[appkeys.CLOCK] = clock
    # Signs with the key; checks with it or a previous one (itsdangerous: the newest last).
    app[appkeys.SIGNER] = URLSafeTimedSerializer(settings.secret_keys[::-1], salt="hotline")
    app[appkeys.STOPPING] = asyncio.Event()
    app[appkeys.PASSWORDS] = Passwords(settings.argon2_profile)
    app[appkeys.CONSUMERS] = []  # filled as the consumers start; read by /healthz
    app[appkeys.METRICS] = Metrics()
    setup_i18n(app)
    setup_health(app)
    setup_metrics(app)
    if pages:
        setup_routes(app)
        app[appkeys.STATS_CACHE] = {}
        app[appkeys.STATS_LOCK] = asyncio.Lock()
    if settings.trusted_proxies:
        # Behind a TLS proxy every request comes from the proxy's address: believe its
        # X-Forwarded-For (and -Proto, -Host), from these addresses only, before any
        # middleware reads request.remote (login limits, /track limits). Strict: a request
        # that did not pass through them is refused, except the health checks.
        forwarded = XForwardedStrict([list(settings.trusted_proxies)], white_paths=UNPROXIED)
        app.middlewares.insert(0, forwarded.middleware)
    app.on_shutdown.append(_stop_background_work)
    parts: list[Part] = [
        embedded_redis,
        redis_client,
        open_store,
        point_directory,
        intake_queue,
        domain_services,
        sms_provider,
    ]
    if pages:
        parts.insert(2, live_updates)
        parts.extend([follow_opt_outs, seal_webhook_secrets])
    if settings.demo and pages:
        parts.append(demo_cases)
    if settings.run_worker and worker_process:
        parts.append(worker_child)
    elif settings.run_worker:
        parts.extend([router_consumer, outbound_sender, timed_work])
    app.cleanup_ctx.append(functools.partial(_lifetime, parts=parts))
    return app


Part = Callable[[web.Application], AsyncIterator[None]]


async def _lifetime(app: web.Application, *, parts: list[Part]) -> AsyncIterator[None]:
    """The app's parts started in order and stopped in reverse. One that fails to start (a
    database newer than this program, a config mistake) stops those started before it,
    there and then: aiohttp runs no cleanup for an app that failed to start, and they
    would be left to the loop's closing (Redis running on, tracebacks for each)."""
    async with contextlib.AsyncExitStack() as stack:
        for part in parts:
            await stack.enter_async_context(asynccontextmanager(part)(app))
        yield


async def worker_child(app: web.Application) -> AsyncIterator[None]:
    """`hotline worker` as a supervised child on this process's Redis, data dir, config
    and database (queue/children.py)."""
    settings = app[appkeys.SETTINGS]
    env = (
        os.environ
        | {
            "HOTLINE_REDIS_URL": app[appkeys.REDIS_URL],
            "HOTLINE_DATA_DIR": str(settings.data_dir),
            "HOTLINE_CONFIG": str(settings.config_path),
        }
        | ({"HOTLINE_PUBLIC_URL": settings.public_url} if settings.public_url else {})
    )
    argv = [sys.executable, "-m", "hotline", "worker"]  # its /healthz on a loopback port
    argv += ["--demo"] if settings.demo else []
    child = WorkerProcess(argv, env, health=True)
    app[appkeys.WORKER_PROCESS] = child
    await child.start()
    try:
        async with _every(app, WORKER_WATCH, child.watch, "worker-watchdog"):
            yield
    finally:
        await child.stop()


async def embedded_redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    if settings.redis_url:
        app[appkeys.REDIS_URL] = settings.redis_url
        yield
        return
    server = EmbeddedRedis(settings.redis_dir)
    # Started from the loop's own thread: the child is tied to this thread's life (PDEATHSIG).
    server.start()
    app[appkeys.REDIS_URL] = server.url

    async def watch() -> None:
        """If the server dies under us (killed, out of memory), start it again at once."""
        if server.died():
            server.restart()  # in the loop's thread, for the same PDEATHSIG reason

    try:
        async with _every(app, REDIS_WATCH, watch, "redis-watchdog"):
            yield
    finally:
        server.stop()


async def redis_client(app: web.Application) -> AsyncIterator[None]:
    """One bounded pool per process: past REDIS_CONNECTIONS a caller waits up to
    REDIS_POOL_WAIT seconds for a connection, then gets a connection error (intake spools),
    never an unbounded pile of sockets."""
    pool = redis.BlockingConnectionPool.from_url(
        app[appkeys.REDIS_URL],
        max_connections=REDIS_CONNECTIONS,
        timeout=REDIS_POOL_WAIT,
        socket_timeout=5,
        socket_connect_timeout=3,
        health_check_interval=30,
    )
    client = redis.Redis(connection_pool=pool)
    app[appkeys.REDIS] = client
    app[appkeys.SIGNALS] = RedisSignals(client)
    try:
        yield
    finally:
        await client.aclose()
        await pool.disconnect()


async def live_updates(app: web.Application) -> AsyncIterator[None]:
    """The case-event relay for open consoles (pages only: a worker has none to feed)."""
    live = LiveUpdates(app[appkeys.REDIS])
    app[appkeys.LIVE] = live
    async with _background(app, live.run(app[appkeys.STOPPING]), "live-updates"):
        yield


async def open_store(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    make_data_dir(settings.data_dir)
    store = await Store.open(settings.database)
    try:
        app[appkeys.STORE] = store
        yield
    finally:
        await store.close()


async def point_directory(app: web.Application) -> AsyncIterator[None]:
    """Apply the console's directory edits, and follow the ones other processes make."""
    directory = app[appkeys.DIRECTORY]
    await directory.open(app[appkeys.STORE], app[appkeys.SIGNALS])
    # Cases stored before their due times were (or by an older worker) get them now.
    filled = await fill_due_times(app[appkeys.STORE], directory.config)
    if filled:
        await app[appkeys.STORE].reports.forget_parts()  # counted without those due times
        log.info("filled in the due times of %d case(s)", filled)

    async def follow() -> None:
        await directory.refresh()

    async with _every(app, DIRECTORY_REFRESH, follow, "directory"):
        yield


async def intake_queue(app: web.Application) -> AsyncIterator[None]:
    """The producer, plus a task that pushes spooled intakes once Redis is reachable."""
    settings = app[appkeys.SETTINGS]
    queue = IntakeQueue(app[appkeys.REDIS], settings.spool_dir, settings.secret_key)
    queue.metrics = app[appkeys.METRICS]
    app[appkeys.INTAKE] = queue

    async def code_filter() -> None:
        """One key lookup. Only a Redis whose code filter was not built from the store (a
        new one, one that lost its data, one from before the filter) needs every stored
        code read back into it; until then intake spools rather than issue a code."""
        if not await queue.has_code_filter():
            count = await queue.rebuild_code_filter(app[appkeys.STORE].cases.all_codes())
            log.warning("built the case-code filter from %d code(s)", count)

    with contextlib.suppress(*REDIS_DOWN):
        await code_filter()

    async def drain() -> None:
        """Rebuild the code filter if Redis lost it, and push the spool to Redis while it
        holds anything (Redis down: next time)."""
        with contextlib.suppress(*REDIS_DOWN):
            await code_filter()
            if queue.spooled():
                log.info("pushed %d spooled intake(s) to redis", await queue.drain_spool())

    async with _every(app, 2.0, drain, "spool-drainer"):
        yield


async def follow_opt_outs(app: web.Application) -> AsyncIterator[None]:
    """The SMS webhook holds the opted-out numbers in memory: follow other processes' changes
    (a STOP another web process took, Twilio's 21610 in the sender) in the database."""
    async with _every(app, OPT_OUTS_FOLLOW, app[appkeys.OUTBOX].follow_opt_outs, "opt-outs"):
        yield


async def domain_services(app: web.Application) -> AsyncIterator[None]:
    """The service layer's objects, wired to the store, the signals and each other."""
    store, signals = app[appkeys.STORE], app[appkeys.SIGNALS]
    outbox = Outbox(store.outbox, signals)
    directory = app[appkeys.DIRECTORY]

    def config() -> PointConfig:  # read at use: console edits take effect
        return directory.config

    links = Links(app[appkeys.SETTINGS].public_url or "")
    notifier = Notifier(outbox, config, links, app[appkeys.CLOCK])
    duty = DutyBook(store, signals, config)
    casework = Casework(store, signals, outbox, notifier, config, app[appkeys.INTAKE])
    app[appkeys.OUTBOX] = outbox
    app[appkeys.NOTIFIER] = notifier
    app[appkeys.DUTY] = duty
    app[appkeys.KIOSKS] = Kiosks(store.kiosks)
    app[appkeys.CANNED] = CannedReplies(store.replies)
    app[appkeys.TOKENS] = ApiTokens(store.tokens)
    settings = app[appkeys.SETTINGS]
    sealer = Sealer(settings.secret_key, settings.previous_secret_keys)
    app[appkeys.WEBHOOKS] = Webhooks(store, sealer)
    app[appkeys.RECEPTIONS] = Receptions(store, outbox, config, links, app[appkeys.CLOCK])
    poster = HttpPoster(lambda: directory.config.point.id)
    app[appkeys.WEBHOOK_DELIVERY] = WebhookDelivery(
        store, poster, app[appkeys.CLOCK], config, links, sealer
    )
    app[appkeys.TIMED] = TimedWork(store, signals, duty, notifier, config)
    app[appkeys.CASEWORK] = casework
    app[appkeys.TEXT_DESK] = TextDesk(app[appkeys.INTAKE], store, outbox, casework, duty, config)
    try:
        yield
    finally:
        await poster.close()


async def seal_webhook_secrets(app: web.Application) -> AsyncIterator[None]:
    """Seal with the current key the webhook secrets an earlier version stored in clear, or
    a previous key sealed: by `serve` alone, so a worker started with a wrong
    HOTLINE_SECRET_KEY never seals them with it."""
    await app[appkeys.WEBHOOKS].seal_older()
    yield


async def sms_provider(app: web.Application) -> AsyncIterator[None]:
    settings = app[appkeys.SETTINGS]
    if not settings.twilio.can_send:
        log.warning("no SMS provider configured: outbound texts are kept in the outbox, unsent")
        app[appkeys.SMS_PROVIDER] = None
        yield
        return
    callback = settings.public_url + "/sms/twilio/status" if settings.public_url else None
    if callback is None:
        log.warning("HOTLINE_PUBLIC_URL unset: Twilio cannot report delivery status")
    provider = TwilioProvider(settings.twilio, callback)
    app[appkeys.SMS_PROVIDER] = provider
    try:
        yield
    finally:
        await provider.close()


async def outbound_sender(app: web.Application) -> AsyncIterator[None]:
    delivery = Delivery(app[appkeys.OUTBOX], app[appkeys.SMS_PROVIDER], app[appkeys.CLOCK])
    sender = Sender(app[appkeys.REDIS], delivery, webhooks=app[appkeys.WEBHOOK_DELIVERY])
    app[appkeys.CONSUMERS].append(sender)
    async with _background(app, sender.run(app[appkeys.STOPPING]), "sender"):
        yield


async def timed_work(app: web.Application) -> AsyncIterator[None]:
    """Time-driven steps, each safe to run from several workers (conditional writes and
    once-per-purpose outbox keys make every step happen once)."""

    async with _every(app, 30.0, lambda: run_timed_work(app), "timed-work"):
        yield


async def run_timed_work(app: web.Application) -> None:
    now = app[appkeys.CLOCK]()
    await app[appkeys.TIMED].hand_off(now)
    await app[appkeys.TIMED].escalate(now)
    await app[appkeys.CASEWORK].close_unrated(now)
    await app[appkeys.NOTIFIER].referrals_overdue(app[appkeys.STORE], now)
    await app[appkeys.RECEPTIONS].remind_due(now)
    if await fill_due_times(app[appkeys.STORE], app[appkeys.DIRECTORY].config):
        await app[appkeys.STORE].reports.forget_parts()  # counted without those due times
    await keep_months(app[appkeys.STORE], app[appkeys.DIRECTORY].config, now)


async def router_consumer(app: web.Application) -> AsyncIterator[None]:
    async def policy() -> RoutingPolicy:
        # Never route to a member another process has just removed: one GET per intake.
        await app[appkeys.DIRECTORY].refresh()
        return await app[appkeys.DUTY].policy(app[appkeys.CLOCK]())

    consumer = RouterConsumer(
        app[appkeys.REDIS],
        app[appkeys.STORE].cases,
        policy,
        app[appkeys.CLOCK],
        notifier=app[appkeys.NOTIFIER],
    )
    consumer.metrics = app[appkeys.METRICS]
    app[appkeys.CONSUMERS].append(consumer)
    async with _background(app, consumer.run(app[appkeys.STOPPING]), "router"):
        yield


DEMO_TOKEN = "demo-read"  # noqa: S105 - a token's name, not a secret


async def demo_cases(app: web.Application) -> AsyncIterator[None]:
    store = app[appkeys.STORE]
    for member in app[appkeys.DIRECTORY].config.members:
        found = await account(store, member.id)
        if found is not None and not found.password_hash:
            await app[appkeys.PASSWORDS].set(store, member.id, DEMO_PASSWORD, app[appkeys.CLOCK]())
    # A read token for trying the API (README "JSON API"): a new one at every demo start,
    # printed once like any token.
    tokens, now = app[appkeys.TOKENS], app[appkeys.CLOCK]()
    with contextlib.suppress(BadToken):
        await tokens.revoke(DEMO_TOKEN, "demo", now)
    try:
        log.info("demo API token (read): %s", await tokens.create(DEMO_TOKEN, "read", "demo", now))
    except BadToken:  # another demo node started at the same moment and made it
        log.warning("demo API token: another node made it just now; see that node's log")
    with contextlib.suppress(*REDIS_DOWN):
        if not await app[appkeys.STORE].cases.any():
            now = app[appkeys.CLOCK]()
            past = await seed_demo_history(store, app[appkeys.DIRECTORY].config, now)
            await app[appkeys.INTAKE].rebuild_code_filter(_one_chunk(past))
            log.info("demo: %d past requests stored", len(past))
            codes = await seed_demo_cases(app[appkeys.INTAKE], now)
            log.info("demo cases submitted: %s", ", ".join(codes))
            config = app[appkeys.DIRECTORY].config
            events = await seed_demo_receptions(store, app[appkeys.INTAKE], config, now)
            log.info("demo: themed receptions %s", ", ".join(map(str, events)))
    yield


async def _one_chunk(codes: list[str]) -> AsyncIterator[list[str]]:
    yield codes


async def _stop_background_work(app: web.Application) -> None:
    """First step of shutdown: consumers and live streams finish what they hold and return."""
    app[appkeys.STOPPING].set()


def _every(
    app: web.Application, seconds: float, step: Callable[[], Awaitable[None]], name: str
) -> AbstractAsyncContextManager[None]:
    """Run `step` every `seconds` for the app's lifetime; a failing step is logged and tried
    again next time, never ending the loop."""

    async def loop(stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await step()
            except Exception:
                log.exception("%s failed; will try again", name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=seconds)

    return _background(app, loop(app[appkeys.STOPPING]), name)


@asynccontextmanager
async def _background(
    app: web.Application, work: Coroutine[Any, Any, None], name: str
) -> AsyncIterator[None]:
    """Run `work` as a task for the app's lifetime; on exit, signal stop and let it finish."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        app[appkeys.STOPPING].set()
        await _finish(task)


async def _finish(task: asyncio.Task[None], grace: float = 5.0) -> None:
    """Let a background task finish its work in hand after the stop signal, then cancel."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
