"""The walk-in kiosk at the park: a registered device submits requests, for visitors or,
with a member signed in, on a visitor's behalf (channel walk-in). It can do nothing else."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.channels.webform import parse_submission
from hotline.queue.errors import REDIS_DOWN
from hotline.service.cases import normalize_code
from hotline.service.i18n import gettext
from hotline.service.tracking import issued_at
from hotline.web import auth, csrf
from hotline.web.cookies import token_cookie
from hotline.web.links import public_links
from hotline.web.middlewares import wants_json
from hotline.web.qr import qr_data_uri
from hotline.web.render import render
from hotline.web.views import duty_names, read_submission

COOKIE = "hotline_kiosk"
YEAR = 365 * 24 * 3600


async def _device_or_403(request: web.Request) -> None:
    if await request.app[appkeys.KIOSKS].device(token_cookie(request, COOKIE)) is None:
        raise web.HTTPForbidden(
            text=gettext("This page is for the liaison point's registered kiosks.")
        )


async def _page(
    request: web.Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.StreamResponse:
    config = request.app[appkeys.DIRECTORY].config
    lang = request[appkeys.LANG]
    session = await auth.current_session(request)
    context: dict[str, Any] = {
        "categories": [(c.code, c.name(lang)) for c in config.categories],
        "values": values,
        "errors": errors,
        "csrf_token": csrf.token(request),
        "assisted_by": session.member.name if session else None,
        "session_csrf": session.csrf if session else "",
        "texts": request.app[appkeys.SETTINGS].twilio.can_send,
    } | await duty_names(request)
    return csrf.attach(request, render(request, "kiosk.html", context, status=status))


async def kiosk(request: web.Request) -> web.StreamResponse:
    """GET /kiosk: the form; `?device=TOKEN` once, at setup, makes this browser the kiosk."""
    token = request.query.get("device")
    if token is not None:
        if await request.app[appkeys.KIOSKS].device(token) is None:
            raise web.HTTPForbidden(text=gettext("This kiosk token is not valid (or revoked)."))
        response = web.HTTPSeeOther(request.app.router["kiosk"].url_for())
        response.set_cookie(
            COOKIE, token, max_age=YEAR, httponly=True, samesite="Strict", path="/kiosk",
            secure=request.app[appkeys.SETTINGS].secure_cookies,
        )  # fmt: skip
        raise response
    await _device_or_403(request)
    return await _page(request, {"idem": uuid.uuid4().hex}, {})


async def submit(request: web.Request) -> web.StreamResponse:
    await _device_or_403(request)
    values, errors, problem = await read_submission(request)
    if problem:
        if wants_json(request):
            return web.json_response({"errors": {csrf.FIELD: problem}}, status=403)
        return await _page(request, values, {csrf.FIELD: gettext(problem)}, status=403)
    try:  # a member taking it for a visitor
        session = await auth.current_session(request)
    except REDIS_DOWN:  # sessions unreadable: take it as the kiosk's own, never lose it
        session = None
    intake = parse_submission(
        values,
        errors,
        request.app[appkeys.DIRECTORY].config,
        received_at=request.app[appkeys.CLOCK](),
        language=request[appkeys.LANG],
        idempotency_header=request.headers.get("Idempotency-Key"),
        channel="walk-in" if session else "kiosk",
        taken_by=session.member.id if session else None,
    )
    if intake is None:
        if wants_json(request):
            # Shown by the kiosk's page to the visitor, in the kiosk's language.
            return web.json_response({"errors": errors.translated()}, status=400)
        return await _page(request, values, errors.translated(), status=400)
    submitted = await request.app[appkeys.INTAKE].submit(intake)
    slip = str(request.app.router["kiosk-slip"].url_for(code=submitted.code))
    if wants_json(request):
        return web.json_response({"code": submitted.code, "slip_url": slip}, status=201)
    raise web.HTTPSeeOther(slip)


async def slip(request: web.Request) -> web.StreamResponse:
    """The receipt to keep or print: code, date, what happens next, a QR code to /track."""
    await _device_or_403(request)
    code = normalize_code(request.match_info["code"])
    app = request.app
    received = await issued_at(app[appkeys.STORE], app[appkeys.INTAKE], code) if code else None
    if code is None or received is None:
        raise web.HTTPNotFound(text=gettext("There is no request with this code."))
    track = public_links(request).track(code)
    context = {
        "code": code,
        "track_url": track,
        "qr": qr_data_uri(track),
        "received": received,
        "point_name": app[appkeys.DIRECTORY].config.point.name,
    }
    return render(request, "kiosk_slip.html", context | await duty_names(request))
