"""CSRF for the public pages: a random cookie plus a signed copy of it in each form."""

from __future__ import annotations

import secrets

from aiohttp import web
from itsdangerous import BadData

from hotline import appkeys
from hotline.service.i18n import N_
from hotline.web.cookies import same, token_cookie

COOKIE = "hotline_csrf"
FIELD = "csrf_token"
MAX_AGE = 24 * 3600


def token(request: web.Request) -> str:
    """The token to put in a form; remembers to set the cookie if the browser has none."""
    value = token_cookie(request, COOKIE) or request.get(appkeys.CSRF_NEW)
    if not value:
        value = secrets.token_urlsafe(24)
        request[appkeys.CSRF_NEW] = value
    return str(request.app[appkeys.SIGNER].dumps(value, salt="csrf"))


def attach(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    value = request.get(appkeys.CSRF_NEW)
    if value:
        response.set_cookie(
            COOKIE,
            value,
            httponly=True,
            samesite="Lax",
            secure=request.app[appkeys.SETTINGS].secure_cookies,
            path="/",
        )
    return response


def problem(request: web.Request, submitted: object) -> str | None:
    """None when the form's token matches the cookie; otherwise what is wrong with the
    csrf_token field (a catalog id: English as it stands, gettext for the reader's language)."""
    cookie = token_cookie(request, COOKIE)
    if not isinstance(submitted, str) or not submitted:
        return N_("missing; reload the form and send it again")
    if not cookie:
        return N_("no CSRF cookie; allow cookies, reload the form and send it again")
    try:
        value = request.app[appkeys.SIGNER].loads(submitted, salt="csrf", max_age=MAX_AGE)
    except BadData:
        return N_("invalid or expired; reload the form and send it again")
    if not isinstance(value, str) or not same(value, cookie):
        return N_("does not match this browser; reload the form and send it again")
    return None
