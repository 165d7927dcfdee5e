"""The JSON API (`/api/v1`): bearer tokens with a scope, a per-token rate limit, errors as
`{"errors": {field: message}}`. Handlers call the same service functions as the console and
the channels: a case made here goes through intake like any other."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.channels.api import parse_case
from hotline.channels.fields import FieldErrors
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.caselists import BadPosition, Filters, list_cases, parse_position
from hotline.service.cases import Case, from_utc_text, normalize_code, to_utc_text
from hotline.service.casework import BadInput, CaseNotFound, Conflict, Request
from hotline.service.i18n import Refusal, gettext
from hotline.service.periods import BadPeriod, parse_period, today_in
from hotline.service.reports import Report, build
from hotline.service.store.tokens import ApiToken
from hotline.service.workflow import MEMBER_ACTIONS, Action, InvalidTransition
from hotline.web.console import referral_due_from, transition_message
from hotline.web.links import public_base

log = logging.getLogger(__name__)

RATE = 120  # requests per token per minute
BODY_MAX = 64 * 1024
REALM = 'Bearer realm="hotline"'


def problem(status: int, errors: dict[str, str], **headers: str) -> web.Response:
    return web.json_response({"errors": errors}, status=status, headers=headers)


def _refused(
    error: type[web.HTTPClientError], message: str, headers: dict[str, str]
) -> web.HTTPClientError:
    """A refusal of the token, in the API's one error shape."""
    body = json.dumps({"errors": {"authorization": message}}, ensure_ascii=False)
    return error(text=body, content_type="application/json", headers=headers)


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
        message = gettext("Too many requests with this token: at most %(n)d a minute.")
        raise _refused(web.HTTPTooManyRequests, message % {"n": RATE}, {"Retry-After": retry})


async def authorize(request: web.Request, scope: str) -> ApiToken:
    """The request's token, if it may do what `scope` says; else 401 (no token, or one that
    is unknown or revoked: with WWW-Authenticate) or 403 (a read token on a write route)."""
    header = request.headers.get("Authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        message = gettext("An API token is needed: Authorization: Bearer <token>.")
        raise _refused(web.HTTPUnauthorized, message, {"WWW-Authenticate": REALM})
    token = await request.app[appkeys.TOKENS].check(secret.strip())
    if token is None:
        challenge = REALM + ', error="invalid_token"'
        message = gettext("This token is unknown or was revoked.")
        raise _refused(web.HTTPUnauthorized, message, {"WWW-Authenticate": challenge})
    if scope == "write" and token.scope != "write":
        challenge = REALM + ', error="insufficient_scope", scope="write"'
        message = gettext("This token may only read.")
        raise _refused(web.HTTPForbidden, message, {"WWW-Authenticate": challenge})
    await _limit(request, token)
    log.info("api %s: %s %s", token.name, request.method, request.path)
    return token


async def create_case(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/cases: a request from a partner (channel `api`), through intake like any
    channel (spooled when Redis is down); 201 with its code and public status page."""
    token = await authorize(request, "write")
    body, refused = await _json_body(request)
    if refused is not None:
        return refused
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


LIMIT_MAX = 500
FILTERS = ("status", "channel", "category", "department", "assignee", "source", "since",
           "until", "q", "limit", "cursor")  # fmt: skip


def _when(at: datetime | None) -> str | None:
    return to_utc_text(at) if at else None


def case_json(case: Case) -> dict[str, Any]:
    """A case as the API lists it: what the console's list shows, times in UTC (ISO 8601);
    never the submitter's name or phone."""
    return {
        "code": case.code,
        "status": case.status,
        "channel": case.channel,
        "received_at": _when(case.received_at),
        "category": case.category,
        "department": case.department_id,
        "assignee": case.assignee_id,
        "source": case.source_tag,
        "company": case.company,
        "text": case.text,
        "language": case.language,
        "urgent": case.urgent,
        "presidium": case.presidium,
        "first_response_at": _when(case.first_response_at),
        "first_response_due": _when(case.first_response_due),
        "resolved_at": _when(case.resolved_at),
        "resolution_due": _when(case.resolution_due),
        "referral_due": _when(case.referral_due),
        "rating": case.rating,
        "reopens": case.reopens,
        "closed_at": _when(case.closed_at),
        "updated_at": _when(case.updated_at),
    }


def _cursor(position: str | None) -> str | None:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=") if position else None


def _position(cursor: str) -> str:
    """An opaque cursor back as the list's page position; BadPosition when it is none."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise BadPosition(cursor) from None
    parse_position(text)  # BadPosition for one never handed out
    return text


async def list_cases_route(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/cases: newest first, filtered, `limit` (at most 500) at a time; `next` is
    the cursor of the following page (keyset: a case stored meanwhile never shifts a page,
    so paging skips and repeats none), null on the last."""
    await authorize(request, "read")
    q = request.query
    errors: dict[str, str] = {}
    for name in q:
        if name not in FILTERS:
            errors[name[:64]] = gettext("Not a filter of this list.")
    for name in FILTERS:
        if len(q.getall(name, [])) > 1:
            errors[name] = gettext("Given more than once.")
    limit = 50
    if "limit" in q:
        if (
            not q["limit"].isascii()
            or not q["limit"].isdigit()
            or not 1 <= int(q["limit"][:4]) <= LIMIT_MAX
            or len(q["limit"]) > 3
        ):
            errors["limit"] = gettext("A whole number from 1 to 500.")
        else:
            limit = int(q["limit"])
    before = ""
    if q.get("cursor"):
        try:
            before = _position(q["cursor"][:200])
        except BadPosition:
            errors["cursor"] = gettext("Not a cursor this list gave.")
    if errors:
        return problem(400, errors)
    filters = Filters(
        view="all", status=q.get("status", "")[:40], channel=q.get("channel", "")[:40],
        category=q.get("category", "")[:64], department=q.get("department", "")[:64],
        member=q.get("assignee", "")[:64], source=q.get("source", "")[:64],
        q=q.get("q", "")[:100], since=q.get("since", "")[:20], until=q.get("until", "")[:20],
        before=before,
    )  # fmt: skip
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    try:
        page = await list_cases(
            request.app[appkeys.STORE], config, filters, "", now, limit=limit, counted=False
        )
    except Refusal as bad:
        name = {"from": "since", "to": "until"}.get(bad.field, bad.field)
        return problem(400, {name: bad.text()})
    except BadPosition:
        return problem(400, {"cursor": gettext("Not a cursor this list gave.")})
    items = [case_json(case) for case, _ in page.rows]
    return web.json_response({"items": items, "next": _cursor(page.older)})


async def one_case(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/cases/{code}: the case with its events and messages (internal notes
    included: a token is the point's own)."""
    await authorize(request, "read")
    code = normalize_code(request.match_info["code"][:20])
    store = request.app[appkeys.STORE]
    case = await store.cases.by_code(code) if code else None
    if case is None:
        return problem(404, {"code": gettext("There is no request with this code.")})
    events = await store.cases.events(case.id)
    messages = await store.cases.messages(case.id)
    body = case_json(case) | {
        "events": [
            {"at": _when(e.at), "kind": e.kind, "status": e.status, "actor": e.actor,
             "detail": e.detail}
            for e in events
        ],
        "messages": [
            {"at": _when(m.at), "direction": m.direction, "channel": m.channel, "body": m.body}
            for m in messages
        ],
    }  # fmt: skip
    return web.json_response(body)


ACTION_FIELDS = ("action", "text", "department", "due", "member", "seen_status")


async def act(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/cases/{code}/actions (scope write): one of the console's actions, by the
    same rules (service/casework.py: the state machine, its 409s, the submitter's texts),
    recorded as done by "api:<token name>"."""
    token = await authorize(request, "write")
    body, refused = await _json_body(request)
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return problem(422, {"body": gettext("A JSON object is expected.")})
    errors = {str(k)[:64]: gettext("Not a field of this request.") for k in body
              if k not in ACTION_FIELDS}  # fmt: skip
    values: dict[str, str] = {}
    for name in ACTION_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = gettext("A string is expected.")
        elif value:
            values[name] = value
    if errors:
        return problem(422, errors)
    code = normalize_code(request.match_info["code"][:20]) or ""
    config = request.app[appkeys.DIRECTORY].config
    try:
        action = Action(values.get("action", ""))
    except ValueError:
        action = Action.RATE  # not a member's action: refused just below
    if action not in MEMBER_ACTIONS:
        return problem(422, {"action": gettext("Unknown action.")})
    try:
        req = Request(
            action=action,
            actor=f"api:{token.name}",
            text=values.get("text"),
            department=values.get("department"),
            due=referral_due_from(values.get("due", "").strip(), config.point.timezone),
            member=values.get("member"),
            seen_status=values.get("seen_status"),
        )
        case = await request.app[appkeys.CASEWORK].act(code, req, request.app[appkeys.CLOCK]())
    except BadInput as exc:
        return problem(422, {exc.field: exc.text()})
    except InvalidTransition as exc:
        return problem(409, {"action": transition_message(exc)})
    except Conflict as exc:
        return problem(409, {"seen_status": gettext(exc.args[0])})
    except CaseNotFound:
        return problem(404, {"code": gettext("There is no request with this code.")})
    return web.json_response(case_json(case))


async def _json_body(request: web.Request) -> tuple[Any, web.Response | None]:
    """The request's JSON, or the 4xx that says why there is none."""
    if request.content_type != "application/json":
        return None, problem(415, {"body": gettext("Send JSON (Content-Type: application/json).")})
    raw = await request.content.read(BODY_MAX + 1)
    if len(raw) > BODY_MAX:
        return None, problem(413, {"body": gettext("At most 64 KiB.")})
    try:
        return json.loads(raw.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, problem(400, {"body": gettext("Not valid JSON in UTF-8.")})


async def duty(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/duty?from=&to=: who is on duty when (local dates, both included; at most
    92 days), overrides and stand-ins included."""
    await authorize(request, "read")
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    q = request.query
    try:
        period = parse_period(q.get("from", ""), q.get("to", ""), "this-week" if not q.get(
            "from") and not q.get("to") else "", today_in(config, now))  # fmt: skip
    except BadPeriod as bad:
        return problem(400, {bad.field: bad.text()})
    if period.days > 92:
        return problem(400, {"to": gettext("At most 92 days at a time.")})
    since, until = period.bounds(config.point.timezone)
    schedule = await request.app[appkeys.DUTY].schedule(now)
    shifts = schedule.shifts(from_utc_text(since), from_utc_text(until))
    members = {m.id: m.name for m in config.members}
    return web.json_response({
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "shifts": [
            {"member": s.member_id, "name": members.get(s.member_id, s.member_id),
             "start": to_utc_text(s.start), "end": to_utc_text(s.end), "source": s.source}
            for s in shifts
        ],
    })  # fmt: skip


def report_json(report: Report) -> dict[str, Any]:
    """A report's figures as the API gives them (the console's, with keys not names)."""
    t = report.totals
    return {
        "from": report.period.first.isoformat(),
        "to": report.period.last.isoformat(),
        "counts": dict(t.n),
        "rates": {
            "response": t.response.fraction(),
            "resolution": t.resolution.fraction(),
            "satisfaction": t.satisfaction.fraction(),
            "referral_on_time": t.referral.fraction(),
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
