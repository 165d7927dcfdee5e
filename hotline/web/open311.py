"""Open311 GeoReport v2 at `/open311/v2` (JSON and XML by the path's extension). Services and
discovery are public; reading service requests takes an `api_key` (an API token, any
scope: requests carry businesses' own words), posting one a token of scope `write`. A POST
goes through intake like every channel."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from aiohttp import web

from hotline import appkeys
from hotline.channels import open311
from hotline.channels.fields import FieldErrors
from hotline.service import caselists
from hotline.service.cases import Case, normalize_code
from hotline.service.i18n import N_, gettext
from hotline.service.store.tokens import ApiToken
from hotline.web import limits
from hotline.web.api import authorize
from hotline.web.forms import read_form
from hotline.web.links import public_base
from hotline.web.middlewares import said, translated

# A time whose offset's "+" came as a space, as an unencoded "+" in a query does.
_UNENCODED_PLUS = re.compile(r"(?<=[0-9]) ([0-9]{2}(?::?[0-9]{2})?)\Z")
# The spec lets these repeat (or list values with commas).
REPEATABLE = ("service_request_id", "service_code", "status")
_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    429: web.HTTPTooManyRequests,
}


def _format(request: web.Request) -> str:
    return request.match_info.get("format", "json")


def _send(request: web.Request, answer: open311.Answer, status: int = 200) -> web.Response:
    return web.Response(
        body=answer.body, status=status, content_type=answer.content_type, charset="utf-8",
        headers=open311.CORS,
    )  # fmt: skip


def refusal(
    request: web.Request,
    status: int,
    descriptions: list[str],
    headers: dict[str, str] | None = None,
) -> web.HTTPException:
    """An error as the spec writes it, in the format the path asked for."""
    answer = open311.errors(_format(request), status, descriptions)
    text, kind = answer.body.decode(), answer.content_type
    headers = open311.CORS | (headers or {})
    if status == 413:
        return web.HTTPRequestEntityTooLarge(0, 0, text=text, content_type=kind, headers=headers)
    return _ERRORS.get(status, web.HTTPBadRequest)(text=text, content_type=kind, headers=headers)


def _named(field: str, message: str) -> str:
    """A problem naming its parameter, as the spec's error descriptions read."""
    return f"{field}: {gettext(message)}"


def _described(errors: FieldErrors) -> list[str]:
    return [f"{name}: {message}" for name, message in errors.translated().items()]


async def _token(request: web.Request, secret: str | None, scope: str) -> ApiToken:
    """The api_key's token: missing, unknown, revoked or read-only for a write: 403 (the
    spec's "Invalid api_key"); past the rate: 429 with Retry-After."""

    def refuse(
        error: type[web.HTTPClientError], message: str, headers: dict[str, str]
    ) -> web.HTTPClientError:
        status = 429 if error is web.HTTPTooManyRequests else 403
        kept = {k: v for k, v in headers.items() if k == "Retry-After"}
        exc = refusal(request, status, [f"api_key: {message}"], kept)
        assert isinstance(exc, web.HTTPClientError)
        return exc

    if not secret:
        raise refusal(request, 403, [_named("api_key", N_("This field is required."))])
    return await authorize(request, scope, secret=secret[:200], refuse=refuse)


def _jurisdiction(request: web.Request, value: str | None) -> None:
    config = request.app[appkeys.DIRECTORY].config
    if value and value != config.point.id:  # given empty, as not given
        message = gettext("Not this point's jurisdiction_id.")
        raise refusal(request, 404, [f"jurisdiction_id: {message}"])


async def discovery(request: web.Request) -> web.StreamResponse:
    config = request.app[appkeys.DIRECTORY].config
    contact = " ".join((config.point.name, *config.point.sms_numbers))
    data = open311.discovery(public_base(request), contact)
    return _send(request, open311.encode(_format(request), "discovery", data))


async def services(request: web.Request) -> web.StreamResponse:
    _jurisdiction(request, request.query.get("jurisdiction_id"))
    config = request.app[appkeys.DIRECTORY].config
    data = open311.services(config, request[appkeys.LANG])
    return _send(request, open311.encode(_format(request), "services", data))


async def service_definition(request: web.Request) -> web.StreamResponse:
    _jurisdiction(request, request.query.get("jurisdiction_id"))
    code = request.match_info["code"]
    if request.app[appkeys.DIRECTORY].config.category(code) is None:
        raise refusal(request, 404, [_named("service_code", N_("Unknown category."))])
    data = open311.definition(code, request[appkeys.LANG])
    return _send(request, open311.encode(_format(request), "service_definition", data))


async def create_request(request: web.Request) -> web.StreamResponse:
    """POST requests.{format}: form-encoded as the spec says; 201 with the case code."""
    try:
        form = await read_form(request)  # strict: bad encodings, NULs, files are refused
    except web.HTTPException as exc:
        raise refusal(request, exc.status, [translated(said(exc))]) from None
    await _token(request, form.get("api_key"), "write")
    _jurisdiction(request, form.get("jurisdiction_id"))
    errors = FieldErrors()
    config = request.app[appkeys.DIRECTORY].config
    intake = open311.parse_request(form, errors, config, received_at=request.app[appkeys.CLOCK]())
    if intake is None:
        raise refusal(request, 400, _described(errors))
    receipt = await request.app[appkeys.INTAKE].submit(intake)
    notice = gettext("Received. Follow it at %(url)s") % {
        "url": public_base(request) + str(request.app.router["track"].url_for(code=receipt.code))
    }
    data = [{"service_request_id": receipt.code, "service_notice": notice, "account_id": None}]
    return _send(request, open311.encode(_format(request), "service_requests", data), 201)


def _when(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if not text:
        return None
    # An offset's "+" sent unencoded arrives as a space ("...T00:00:00 08:00"): the one
    # reading a client can have meant, so it is taken as the "+" it was.
    text = _UNENCODED_PLUS.sub(r"+\1", text[:40])
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not 1900 <= at.year <= 9000:
        message = gettext(
            "A date and time with its offset (ISO 8601), e.g. 2026-11-01T00:00:00+08:00."
        )
        raise refusal(request, 400, [f"{name}: {message}"])
    return at


def _listed(request: web.Request, name: str) -> list[str]:
    """A parameter the spec lets repeat or list with commas: every value given."""
    return [v.strip() for given in request.query.getall(name, []) for v in given.split(",")
            if v.strip()]  # fmt: skip


async def _answer_cases(request: web.Request, cases: list[Case]) -> web.StreamResponse:
    store = request.app[appkeys.STORE]
    config = request.app[appkeys.DIRECTORY].config
    ids = [case.id for case in cases]
    notes, updates = await store.cases.latest_replies(ids), await store.cases.public_updates(ids)
    # A withdrawn or rejected one's reason, as /track shows it, is its last word.
    notes |= await store.cases.end_reasons(ids)
    data = [
        open311.request_json(
            case, config, request[appkeys.LANG], notes.get(case.id), updates.get(case.id)
        )
        for case in cases
    ]
    return _send(request, open311.encode(_format(request), "service_requests", data))


async def requests(request: web.Request) -> web.StreamResponse:
    """GET requests.{format}: by `service_request_id` (comma-separated), or received between
    `start_date` and `end_date` (the last 90 days by default), of a `service_code`, `open` or
    `closed`; at most 1000, newest first."""
    q = request.query
    for name in q:
        if len(q.getall(name)) > 1 and name not in REPEATABLE:
            raise refusal(request, 400, [_named(name[:64], N_("Given more than once."))])
    await _token(request, q.get("api_key"), "read")
    _jurisdiction(request, q.get("jurisdiction_id"))
    store = request.app[appkeys.STORE]
    # By id when any is given (an empty value among them, as some clients send, names none).
    if wanted := _listed(request, "service_request_id"):
        if len(wanted) > open311.IDS_MAX:
            message = gettext("At most %(n)d at a time.") % {"n": open311.IDS_MAX}
            raise refusal(request, 400, [f"service_request_id: {message}"])
        cases = []
        for typed in wanted:
            code = normalize_code(typed.strip()[:20])
            case = await store.cases.by_code(code) if code else None
            if case is not None and case not in cases:
                cases.append(case)
        return await _answer_cases(request, cases)
    now = request.app[appkeys.CLOCK]()
    end = _when(request, "end_date") or now
    since = _when(request, "start_date") or end - timedelta(days=open311.REQUESTS_DAYS)
    until = end + timedelta(microseconds=1)  # end_date is the latest time included
    if since > end:
        message = (
            gettext("start_date must be before end_date.")
            if q.get("end_date")
            else gettext("start_date is later than now.")
        )
        raise refusal(request, 400, [f"start_date: {message}"])
    if end - since > timedelta(days=open311.REQUESTS_DAYS):  # the spec's longest span
        message = gettext("At most 90 days from start_date to end_date.")
        # The one given is at fault: start_date alone runs to now.
        named = "end_date" if request.query.get("end_date") else "start_date"
        raise refusal(request, 400, [f"{named}: {message}"])
    statuses: set[str] = set()
    for status in _listed(request, "status"):
        if status not in open311.STATUSES:
            message = gettext("open or closed.")
            raise refusal(request, 400, [f"status: {message}"])
        statuses |= open311.STATUSES[status]
    codes = _listed(request, "service_code")
    config = request.app[appkeys.DIRECTORY].config
    if any(config.category(code) is None for code in codes):
        raise refusal(request, 400, [_named("service_code", N_("Unknown category."))])
    cases = await caselists.cases_received(
        store, since=since, until=until, statuses=tuple(statuses), categories=tuple(codes),
        limit=open311.REQUESTS_MAX,
    )  # fmt: skip
    return await _answer_cases(request, cases)


async def one_request(request: web.Request) -> web.StreamResponse:
    """GET requests/{id}.{format}: a list of one, as the spec has it."""
    await _token(request, request.query.get("api_key"), "read")
    _jurisdiction(request, request.query.get("jurisdiction_id"))
    code = normalize_code(request.match_info["id"][:20])
    case = await request.app[appkeys.STORE].cases.by_code(code) if code else None
    if case is None:
        message = gettext("There is no request with this code.")
        raise refusal(request, 404, [f"service_request_id: {message}"])
    return await _answer_cases(request, [case])


async def token(request: web.Request) -> web.StreamResponse:
    """GET tokens/{token}.{format}: a POST here answers the request's id at once, so its
    token is that id; known once it is issued (even before it is stored)."""
    _jurisdiction(request, request.query.get("jurisdiction_id"))
    try:  # public, as /track is: guessing codes is limited the same way
        await limits.count_lookup(request)
    except web.HTTPTooManyRequests as exc:
        retry = {"Retry-After": exc.headers["Retry-After"]}
        raise refusal(request, 429, [translated(exc.text or "")], retry) from None
    code = normalize_code(request.match_info["token"][:20])
    known = code is not None and (
        await request.app[appkeys.STORE].cases.by_code(code) is not None
        or await request.app[appkeys.INTAKE].received_at(code) is not None
    )
    if known:
        await limits.refund_lookup(request)
    else:
        message = gettext("There is no request with this code.")
        raise refusal(request, 404, [f"token: {message}"])
    data = [{"service_request_id": code, "token": code}]
    return _send(request, open311.encode(_format(request), "service_requests", data))


def add_routes(app: web.Application) -> None:
    base = "/open311/v2"
    fmt = "{format:json|xml}"
    app.router.add_get(f"{base}/discovery.{fmt}", discovery, name="open311-discovery")
    app.router.add_get(f"{base}/services.{fmt}", services, name="open311-services")
    app.router.add_get(f"{base}/services/{{code}}.{fmt}", service_definition)
    app.router.add_get(f"{base}/requests.{fmt}", requests, name="open311-requests")
    app.router.add_post(f"{base}/requests.{fmt}", create_request)
    app.router.add_get(f"{base}/requests/{{id}}.{fmt}", one_request)
    app.router.add_get(f"{base}/tokens/{{token}}.{fmt}", token)
