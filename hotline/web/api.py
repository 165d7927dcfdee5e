"""The JSON API (`/api/v1`): bearer tokens with a scope, a per-token rate limit, errors as
`{"errors": {field: message}}`. Handlers call the same service functions as the console and
the channels: a case made here goes through intake like any other."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.channels.api import parse_case
from hotline.channels.fields import FieldErrors
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.cases import to_utc_text
from hotline.service.i18n import gettext
from hotline.service.periods import BadPeriod, parse_period, today_in
from hotline.service.reports import Rate, Report, build
from hotline.service.store.tokens import ApiToken
from hotline.web.links import public_base

log = logging.getLogger(__name__)

RATE = 120  # requests per token per minute
BODY_MAX = 64 * 1024
REALM = 'Bearer realm="hotline"'


def problem(status: int, errors: dict[str, str], **headers: str) -> web.Response:
    return web.json_response({"errors": errors}, status=status, headers=headers)


async def _limit(request: web.Request, token: ApiToken) -> None:
    """At most RATE requests a minute per token (429 with Retry-After); the first of each
    minute notes the token as used. Without Redis nothing is counted (and intake spools)."""
    now = time.time()
    window = int(now // 60)
    key = f"{keys.API_RATE}{token.id}:{window}"
    try:
        async with request.app[appkeys.REDIS].pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
    except REDIS_DOWN:
        log.warning("api rate limit not counted for %s: Redis is unreachable", token.name)
        return
    if count == 1:
        at = request.app[appkeys.CLOCK]()
        await request.app[appkeys.STORE].tokens.used(token.id, to_utc_text(at))
    if count > RATE:
        retry = str(max(1, 60 - int(now % 60)))
        raise web.HTTPTooManyRequests(
            text=json.dumps({"errors": {"authorization": gettext(
                "Too many requests with this token: at most %(n)d a minute.") % {"n": RATE}}}),
            content_type="application/json",
            headers={"Retry-After": retry},
        )  # fmt: skip


async def authorize(request: web.Request, scope: str) -> ApiToken:
    """The request's token, if it may do what `scope` says; else 401 (no token, or one that
    is unknown or revoked: with WWW-Authenticate) or 403 (a read token on a write route)."""
    header = request.headers.get("Authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise web.HTTPUnauthorized(
            text=json.dumps({"errors": {"authorization": gettext(
                "An API token is needed: Authorization: Bearer <token>.")}}),
            content_type="application/json",
            headers={"WWW-Authenticate": REALM},
        )  # fmt: skip
    token = await request.app[appkeys.TOKENS].check(secret.strip())
    if token is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"errors": {"authorization": gettext(
                "This token is unknown or was revoked.")}}),
            content_type="application/json",
            headers={"WWW-Authenticate": REALM + ', error="invalid_token"'},
        )  # fmt: skip
    if scope == "write" and token.scope != "write":
        raise web.HTTPForbidden(
            text=json.dumps({"errors": {"authorization": gettext(
                "This token may only read.")}}),
            content_type="application/json",
            headers={"WWW-Authenticate": REALM + ', error="insufficient_scope", scope="write"'},
        )  # fmt: skip
    await _limit(request, token)
    log.info("api %s: %s %s", token.name, request.method, request.path)
    return token


async def create_case(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/cases: a request from a partner (channel `api`), through intake like any
    channel (spooled when Redis is down); 201 with its code and public status page."""
    token = await authorize(request, "write")
    if request.content_type != "application/json":
        return problem(415, {"body": gettext("Send JSON (Content-Type: application/json).")})
    raw = await request.content.read(BODY_MAX + 1)
    if len(raw) > BODY_MAX:
        return problem(413, {"body": gettext("At most 64 KiB.")})
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return problem(400, {"body": gettext("Not valid JSON in UTF-8.")})
    errors = FieldErrors()
    config = request.app[appkeys.DIRECTORY].config
    intake = parse_case(
        body, errors, config,
        received_at=request.app[appkeys.CLOCK](),
        token_id=token.id,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )  # fmt: skip
    if intake is None:
        return problem(422, errors.translated())
    receipt = await request.app[appkeys.INTAKE].submit(intake)
    status_url = public_base(request) + str(request.app.router["track"].url_for(code=receipt.code))
    return web.json_response(
        {"code": receipt.code, "status_url": status_url},
        status=201,
        headers={"Location": status_url},
    )


def _rate(rate: Rate) -> dict[str, Any]:
    percent = None if rate.percent is None else round(rate.percent, 1)
    return {"numerator": rate.num, "denominator": rate.den, "percent": percent}


def report_json(report: Report) -> dict[str, Any]:
    """A report's figures as the API gives them (the console's, with keys not names)."""
    t = report.totals
    return {
        "from": report.period.first.isoformat(),
        "to": report.period.last.isoformat(),
        "counts": dict(t.n),
        "rates": {
            "response": _rate(t.response),
            "resolution": _rate(t.resolution),
            "satisfaction": _rate(t.satisfaction),
            "referral_on_time": _rate(t.referral),
        },
        "median_seconds": {
            "first_response": report.median_response,
            "resolution": report.median_resolution,
        },
        "by": {
            dimension: [{"key": key, "received": c["received"]} for key, c in groups]
            for dimension, groups in report.groups.items()
        },
        # Received per day (a period of two months or less), week (a year) or month.
        "series": [
            {
                "first": b.first.isoformat(),
                "last": b.last.isoformat(),
                "received": b.counts["received"],
                "by_channel": b.by_channel,
            }
            for b in report.buckets
        ],
    }


async def reports(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/reports?from=&to=: the figures of the console's reports, for the point."""
    await authorize(request, "read")
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    q = request.query
    try:
        period = parse_period(q.get("from", ""), q.get("to", ""), q.get("period", ""),
                              today_in(config, now))  # fmt: skip
    except BadPeriod as bad:
        return problem(400, {bad.field: bad.text()})
    report = await build(request.app[appkeys.STORE], config, period, now)
    return web.json_response(report_json(report))
