"""The JSON API (`/api/v1`): bearer tokens with a scope, a per-token rate limit, errors as
`{"errors": {field: message}}`. Handlers call the same service functions as the console and
the channels: a case made here goes through intake like any other."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from hotline import appkeys
from hotline.channels import api as wire
from hotline.channels.fields import FieldErrors
from hotline.channels.openapi import document
from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.intake import KeyReused
from hotline.service.caselists import BadPosition, Filters, list_cases, parse_position
from hotline.service.cases import from_utc_text, normalize_code, to_utc_text
from hotline.service.casework import ACTION_TEXTS, BadInput, CaseNotFound, Conflict, Request
from hotline.service.i18n import N_, Refusal, gettext
from hotline.service.periods import BadPeriod, parse_period, today_in
from hotline.service.receptions import period_of
from hotline.service.reports import Counts, Report, build
from hotline.service.store.tokens import ApiToken
from hotline.service.workflow import Action, InvalidTransition
from hotline.web.console import referral_due_from, transition_message
from hotline.web.links import public_base

log = logging.getLogger(__name__)

BODY_MAX = 64 * 1024
REALM = 'Bearer realm="hotline"'
M = TypeVar("M", bound=BaseModel)


def problem(status: int, errors: dict[str, str], **headers: str) -> web.Response:
    body = json.dumps({"errors": errors}, ensure_ascii=False)  # as answer() writes UTF-8
    return web.json_response(text=body, status=status, headers=headers)


Refuse = Callable[[type[web.HTTPClientError], str, dict[str, str]], web.HTTPClientError]


def _refused(
    error: type[web.HTTPClientError], message: str, headers: dict[str, str]
) -> web.HTTPClientError:
    """A refusal of the token, in the API's one error shape."""
    body = json.dumps({"errors": {"authorization": message}}, ensure_ascii=False)
    return error(text=body, content_type="application/json", headers=headers)


async def _limit(request: web.Request, token: ApiToken, refuse: Refuse) -> None:
    """At most HOTLINE_API_RATE requests a minute per token (429 with Retry-After); the first
    of each minute notes the token as used. Without Redis nothing is counted (and intake spools)."""
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
    rate = request.app[appkeys.SETTINGS].api_rate
    if count > rate:
        retry = str(max(1, 60 - int(now % 60)))
        message = gettext("Too many requests with this token: at most %(n)d a minute.")
        raise refuse(web.HTTPTooManyRequests, message % {"n": rate}, {"Retry-After": retry})


async def authorize(
    request: web.Request, scope: str, *, secret: str | None = None, refuse: Refuse = _refused
) -> ApiToken:
    """The request's token (the bearer's, or `secret` where a protocol passes it otherwise,
    as Open311's api_key), if it may do what `scope` says; else 401 (no token, or one that
    is unknown or revoked: with WWW-Authenticate) or 403 (a read token on a write route),
    as `refuse` shapes them."""
    if secret is None:
        kind, _, secret = request.headers.get("Authorization", "").partition(" ")
        if kind.lower() != "bearer":
            secret = ""
    if not secret.strip():
        message = gettext("An API token is needed: Authorization: Bearer <token>.")
        raise refuse(web.HTTPUnauthorized, message, {"WWW-Authenticate": REALM})
    token = await request.app[appkeys.TOKENS].check(secret.strip())
    if token is None:
        challenge = REALM + ', error="invalid_token"'
        message = gettext("This token is unknown or was revoked.")
        raise refuse(web.HTTPUnauthorized, message, {"WWW-Authenticate": challenge})
    if scope == "write" and token.scope != "write":
        challenge = REALM + ', error="insufficient_scope", scope="write"'
        message = gettext("This token may only read.")
        raise refuse(web.HTTPForbidden, message, {"WWW-Authenticate": challenge})
    await _limit(request, token, refuse)
    log.info("api %s: %s %s", token.name, request.method, request.path)
    return token


async def create_case(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/cases: a request from a partner (channel `api`), through intake like any
    channel (spooled when Redis is down); 201 with its code and public status page."""
    token = await authorize(request, "write")
    if len(request.headers.getall("Idempotency-Key", [])) > 1:  # which one would hold?
        return problem(400, {"Idempotency-Key": gettext("Given more than once.")})
    body = await _body(request, wire.NewCase)
    errors = FieldErrors()
    config = request.app[appkeys.DIRECTORY].config
    intake = wire.parse_case(
        body, errors, config,
        received_at=request.app[appkeys.CLOCK](),
        token_id=token.id,
        idempotency_key=request.headers.get("Idempotency-Key"),
    )  # fmt: skip
    if intake is None:
        return problem(422, errors.translated())
    queue = request.app[appkeys.INTAKE]
    fingerprint = None
    if request.headers.get("Idempotency-Key"):
        # A retry is the same request; another one under the key would get the first's code
        # and be lost without a word (as the IETF's Idempotency-Key draft says: a 422).
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        if not await queue.same_request(intake.key, fingerprint):
            return problem(422, {"Idempotency-Key": gettext(KEY_REUSED)})
    try:
        receipt = await queue.submit(intake, fingerprint=fingerprint)
    except KeyReused:  # another request under the key got to the spool first
        return problem(422, {"Idempotency-Key": gettext(KEY_REUSED)})
    status_url = public_base(request) + str(request.app.router["track"].url_for(code=receipt.code))
    created = wire.Created(code=receipt.code, status_url=status_url)
    return answer(created, status=201, headers={"Location": status_url})


KEY_REUSED = N_("This key was sent before with another request: a new request needs a new key.")


def answer(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A model as the JSON the OpenAPI document promises."""
    return web.Response(
        body=model.model_dump_json(by_alias=True),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _query(request: web.Request, model: type[M]) -> M:
    """The query string read through `model`: 400 naming each unknown, repeated or
    invalid parameter."""
    q = request.query
    errors = FieldErrors()
    for name in q:
        if len(q.getall(name)) > 1:
            errors.add(name[:64], N_("Given more than once."))
    if not errors:
        try:
            return model.model_validate(dict(q))
        except ValidationError as exc:
            wire.field_errors(exc, errors)
    raise _failed(web.HTTPBadRequest, errors)


async def _body(request: web.Request, model: type[M]) -> M:
    """The request's JSON read through `model`, or the 4xx that says why there is none:
    415 not JSON, 413 over 64 KiB, 400 not JSON in UTF-8, 422 a field refused."""
    if request.content_type != "application/json":
        raise _failed(web.HTTPUnsupportedMediaType,
                      "body", N_("Send JSON (Content-Type: application/json)."))  # fmt: skip
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise _failed(web.HTTPUnsupportedMediaType,
                      "body", N_("Send JSON in UTF-8 (charset=utf-8, or none)."))  # fmt: skip
    raw = bytearray()  # read() hands back what has arrived so far: read to the end
    try:
        while len(raw) <= BODY_MAX and (
            chunk := await request.content.read(BODY_MAX + 1 - len(raw))
        ):
            raw += chunk
    except RequestPayloadError:  # "Content-Encoding: gzip" and it is not; or a body cut short
        undecodable = N_("Cannot be read: cut short, or not in the Content-Encoding it names.")
        raise _failed(web.HTTPBadRequest, "body", undecodable) from None
    if len(raw) > BODY_MAX:
        raise _failed(web.HTTPRequestEntityTooLarge, "body", N_("At most 64 KiB."))
    body = bytes(raw)
    if (repeated := _repeated_key(body)) is not None:  # the parser keeps the last
        raise _failed(web.HTTPBadRequest, repeated, N_("Given more than once."))
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise _failed(web.HTTPBadRequest, "body", N_("Not valid JSON in UTF-8.")) from None
        errors = FieldErrors()
        wire.field_errors(exc, errors)
        raise _failed(web.HTTPUnprocessableEntity, errors) from None


class _Repeated(Exception):
    pass


def _no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    found: dict[str, object] = {}
    for key, value in pairs:
        if key in found:
            raise _Repeated(key)
        found[key] = value
    return found


def _repeated_key(raw: bytes) -> str | None:
    """A key an object of the body gives twice (`{"text": "a", "text": "b"}`), named (at
    most 64 characters): which one was meant cannot be known. None when there is none, or
    the body is no JSON (the model's reading says so)."""
    try:
        json.loads(raw, object_pairs_hook=_no_repeats)
    except _Repeated as repeated:
        return str(repeated.args[0])[:64] or "body"
    except (ValueError, RecursionError):
        return None
    return None


def _failed(
    error: type[web.HTTPException], errors: FieldErrors | str, message: str = ""
) -> web.HTTPException:
    """An HTTP error in the API's one shape, from collected errors or one field's."""
    if isinstance(errors, str):
        errors = FieldErrors({errors: (message, {})})
    body = json.dumps({"errors": errors.translated()}, ensure_ascii=False)
    if error is web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            BODY_MAX, BODY_MAX + 1, text=body, content_type="application/json"
        )
    return error(text=body, content_type="application/json")


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
    query = _query(request, wire.CaseQuery)
    before = ""
    if query.cursor:
        try:
            before = _position(query.cursor)
        except BadPosition:
            return problem(400, {"cursor": gettext("Not a cursor this list gave.")})
    filters = Filters(
        view="all", status=query.status or "", channel=query.channel or "",
        category=query.category or "", department=query.department or "",
        member=query.assignee or "", source=query.source or "", q=query.q or "",
        since=query.since or "", until=query.until or "", before=before,
        reception=str(query.reception or ""),
    )  # fmt: skip
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    try:
        page = await list_cases(
            request.app[appkeys.STORE], config, filters, "", now, limit=query.limit, counted=False
        )
    except Refusal as bad:
        name = {"from": "since", "to": "until"}.get(bad.field, bad.field)
        return problem(400, {name: bad.text()})
    except BadPosition:
        return problem(400, {"cursor": gettext("Not a cursor this list gave.")})
    items = [wire.CaseOut.of(case) for case, _ in page.rows]
    return answer(wire.CasePage(items=items, next=_cursor(page.older)))


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
    now = request.app[appkeys.CLOCK]()
    referrals = [
        wire.ReferralOut(department=r.department_id, referred_at=r.referred_at, due=r.due,
                         answered_at=r.answered_at, ended_at=r.ended_at, state=r.state(now))
        for r in await store.cases.referrals(case.id)
    ]  # fmt: skip
    detail = wire.CaseDetail(
        **wire.CaseOut.of(case).__dict__,
        events=[
            wire.EventOut(at=e.at, kind=e.kind, status=e.status, actor=e.actor, detail=e.detail)
            for e in events
        ],
        messages=[
            wire.MessageOut(at=m.at, direction=m.direction, channel=m.channel, body=m.body)
            for m in messages
        ],
        referrals=referrals,
    )
    return answer(detail)


async def act(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/cases/{code}/actions (scope write): one of the console's actions, by the
    same rules (service/casework.py: the state machine, its 409s, the submitter's texts),
    recorded as done by "api:<token name>"."""
    token = await authorize(request, "write")
    body = await _body(request, wire.CaseAction)
    code = normalize_code(request.match_info["code"][:20]) or ""
    config = request.app[appkeys.DIRECTORY].config
    try:
        req = Request(
            action=Action(body.action),
            actor=f"api:{token.name}",
            text=body.text or None,
            department=body.department or None,
            due=referral_due_from((body.due or "").strip(), config.point.timezone),
            member=body.member or None,
            seen_status=body.seen_status,
            seen_assignee=body.seen_assignee,
            public=body.public,
        )
        case = await request.app[appkeys.CASEWORK].act(code, req, request.app[appkeys.CLOCK]())
    except BadInput as exc:
        # The console names the text by what it is (reply, outcome...); here it is `text`.
        field = "text" if exc.field in ACTION_TEXTS else exc.field
        return problem(422, {field: exc.text()})
    except InvalidTransition as exc:
        return problem(409, {"action": transition_message(exc)})
    except Conflict as exc:
        return problem(409, {exc.field: gettext(exc.args[0])})
    except CaseNotFound:
        return problem(404, {"code": gettext("There is no request with this code.")})
    return answer(wire.CaseOut.of(case))


async def duty(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/duty?from=&to=: who is on duty when (local dates, both included; at most
    92 days), overrides and stand-ins included."""
    await authorize(request, "read")
    query = _query(request, wire.DutyQuery)
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    first, last = query.from_ or "", query.to or ""
    try:
        preset = "" if first or last else "this-week"
        period = parse_period(first, last, preset, today_in(config, now))
    except BadPeriod as bad:
        return problem(400, {bad.field: bad.text()})
    if period.days > 92:
        return problem(400, {"to": gettext("At most 92 days at a time.")})
    since, until = period.bounds(config.point.timezone)
    schedule = await request.app[appkeys.DUTY].schedule(now)
    shifts = schedule.shifts(from_utc_text(since), from_utc_text(until))
    members = {m.id: m.name for m in config.members}
    return answer(wire.DutyOut.model_validate({
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "shifts": [
            {"member": s.member_id, "name": members.get(s.member_id, s.member_id),
             "start": s.start, "end": s.end, "source": s.source}
            for s in shifts
        ],
    }))  # fmt: skip


def _group(dimension: str, key: str | None, counts: Counts) -> dict[str, Any]:
    """One key of a breakdown: received, and the rates (companies are counted by received
    alone)."""
    group: dict[str, Any] = {"key": key, "received": counts["received"]}
    if dimension != "company":
        group["response"] = counts.response.fraction()
        group["resolution"] = counts.resolution.fraction()
        group["satisfaction"] = counts.satisfaction.fraction()
    return group


def report_out(report: Report) -> wire.ReportOut:
    """A report's figures as the API gives them (the console's, with keys not names)."""
    t = report.totals
    return wire.ReportOut.model_validate(
        {
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
                dimension: [_group(dimension, key, c) for key, c in groups]
                for dimension, groups in report.groups.items()
            },
            "other_companies": report.other_companies["received"] if report.other_companies else 0,
            "referrals": [
                {
                    "key": key,
                    "referrals": c["referrals"],
                    "on_time": c.referral.fraction(),
                    "past_due": c["referral_late"],
                }
                for key, c in report.referrals
            ],
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
    )


async def reports(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/reports?from=&to=: the figures of the console's reports, for the point."""
    await authorize(request, "read")
    query = _query(request, wire.ReportQuery)
    if query.period and (query.from_ or query.to):
        return problem(400, {"period": gettext("Either a period or from and to, not both.")})
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    store = request.app[appkeys.STORE]
    reception = await store.receptions.get(query.reception) if query.reception else None
    if query.reception is not None and reception is None:
        return problem(400, {"reception": gettext("no such reception")})
    try:
        period = parse_period(query.from_ or "", query.to or "", query.period or "",
                              today_in(config, now))  # fmt: skip
    except BadPeriod as bad:
        return problem(400, {bad.field: bad.text()})
    if reception is not None and not (query.from_ or query.to or query.period):
        period = period_of(reception, config, today_in(config, now))  # as the console does
    report = await build(store, config, period, now, reception=query.reception)
    return answer(report_out(report))


async def openapi(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/openapi.json: the document generated from the models (public)."""
    config = request.app[appkeys.DIRECTORY].config
    return web.json_response(document(config.point.name))
