"""Every typed key on the aiohttp application, in one module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import redis.asyncio as redis
from aiohttp import web
from itsdangerous import URLSafeTimedSerializer
from multidict import MultiDict

from hotline.queue.children import WorkerProcess
from hotline.queue.consumer import StreamConsumer
from hotline.queue.intake import IntakeQueue
from hotline.queue.live import LiveUpdates
from hotline.queue.signals import RedisSignals
from hotline.service.accounts import Passwords, Session
from hotline.service.casework import Casework
from hotline.service.directory import Directory
from hotline.service.dutybook import DutyBook
from hotline.service.inbound import TextDesk
from hotline.service.kiosks import Kiosks
from hotline.service.metrics import Metrics
from hotline.service.notify import Notifier
from hotline.service.outbox import Outbox
from hotline.service.ports import SmsProvider
from hotline.service.receptions import Receptions
from hotline.service.replies import CannedReplies
from hotline.service.reports import Report
from hotline.service.settings import Settings
from hotline.service.store import Store
from hotline.service.timed import TimedWork
from hotline.service.tokens import ApiTokens
from hotline.service.webhooks import WebhookDelivery, Webhooks

SETTINGS = web.AppKey("settings", Settings)
# The point config in force is DIRECTORY.config: the file with the console's edits.
DIRECTORY = web.AppKey("directory", Directory)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
REDIS_URL = web.AppKey("redis_url", str)
REDIS = web.AppKey("redis", redis.Redis)
SIGNALS = web.AppKey("signals", RedisSignals)
LIVE = web.AppKey("live", LiveUpdates)
# The stream consumers running in this process (router, sender), for /healthz.
CONSUMERS: web.AppKey[list[StreamConsumer]] = web.AppKey("consumers")
# `hotline serve`'s worker, when it runs in a child process (app.worker_child).
WORKER_PROCESS: web.AppKey[WorkerProcess] = web.AppKey("worker_process")
STORE = web.AppKey("store", Store)
INTAKE = web.AppKey("intake", IntakeQueue)
OUTBOX = web.AppKey("outbox", Outbox)
CASEWORK = web.AppKey("casework", Casework)
DUTY = web.AppKey("duty", DutyBook)
KIOSKS = web.AppKey("kiosks", Kiosks)
TIMED = web.AppKey("timed", TimedWork)
NOTIFIER = web.AppKey("notifier", Notifier)
TEXT_DESK = web.AppKey("text_desk", TextDesk)
CANNED = web.AppKey("canned", CannedReplies)
# None when no SMS provider is configured: outbound texts stay in the outbox as not sent.
SMS_PROVIDER: web.AppKey[SmsProvider | None] = web.AppKey("sms_provider")
SIGNER = web.AppKey("signer", URLSafeTimedSerializer)
PASSWORDS = web.AppKey("passwords", Passwords)
STOPPING = web.AppKey("stopping", asyncio.Event)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", ApiTokens)
WEBHOOKS = web.AppKey("webhooks", Webhooks)
RECEPTIONS = web.AppKey("receptions", Receptions)
WEBHOOK_DELIVERY = web.AppKey("webhook_delivery", WebhookDelivery)
# /stats' figures, counted at most every few minutes: {day: (monotonic time, reports)}.
STATS_CACHE: web.AppKey[dict[str, tuple[float, dict[str, Report]]]] = web.AppKey("stats_cache")
STATS_LOCK = web.AppKey("stats_lock", asyncio.Lock)  # one count at a time: the others wait

# Request-scoped values set by middlewares and helpers.
LANG = web.RequestKey("lang", str)
CSRF_NEW = web.RequestKey("csrf_new", str)
SESSION: web.RequestKey[Session] = web.RequestKey("session")
FORM: web.RequestKey[MultiDict[str]] = web.RequestKey("form")
