"""Security headers on every response, and friendly error pages for browsers."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from hotline.channels import open311
from hotline.channels.forms import CONTROL
from hotline.queue.intake import CannotKeep
from hotline.service.i18n import N_, gettext, named
from hotline.service.store.database import unavailable as store_unavailable
from hotline.web.render import error_page

log = logging.getLogger(__name__)
STORE_DOWN = N_("The service cannot reach its database just now. Please try again shortly.")
CANNOT_KEEP = N_(
    "Requests cannot be taken just now: yours was not kept. Please send it again in a few minutes."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

PRIVATE_PATHS = ("/console", "/api/")  # answers no cache keeps (Cache-Control: no-store)

# aiohttp's own refusals, in words of ours (the page translates them).
PLAIN = {
    404: N_("There is no such page."),
    405: N_("This address cannot be used that way."),
}
# aiohttp's refusal of a body over the app's client_max_size (app.MAX_REQUEST_BYTES), said
# in ours and naming the body as a form refusal names its field.
TOO_LARGE = N_("At most 256 KiB.")


def wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries the security headers, error pages and streamed answers (an
    export, the live event stream) included: set as its headers go out
    (`on_response_prepare`), when a middleware would be too late for a stream. The
    console's and the API's answers hold personal data: no browser or proxy keeps them
    (a member signed out of a shared computer leaves nothing in its history to open)."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(PRIVATE_PATHS):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An exception no handler expected becomes a 500 page here (logged), never aiohttp's
    bare one; the store or Redis down, a 503. (The headers: `add_security_headers`.)"""
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except CannotKeep:
        # Redis down and the spool refusing too (logged where it happened): a 503 that says
        # nothing was kept, never a code.
        response = _error(request, 503, CANNOT_KEEP)
        response.headers["Retry-After"] = "60"
    except Exception as exc:
        if store_unavailable(exc) and not isinstance(exc, OSError):  # an OSError may be any
            log.error("database unavailable serving %s %s: %r", request.method, request.path, exc)
            response = _error(request, 503, STORE_DOWN)
            response.headers["Retry-After"] = "30"
        else:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            response = _error(
                request, 500, N_("Something went wrong on our side. Please try again.")
            )
    return response


def translated(message: str) -> str:
    """A catalog id, or "field: catalog id" (a refusal naming the field it found)."""
    translated = gettext(message)
    if translated == message:
        field, sep, problem = message.partition(": ")
        if sep:
            return named(field, gettext(problem))
    return translated


def _error(request: web.Request, status: int, message: str) -> web.Response:
    if request.path.startswith("/open311/"):  # the spec's error list, as the path asks
        fmt = "xml" if request.path.endswith(".xml") else "json"
        answer = open311.errors(fmt, status, [translated(message)])
        return web.Response(
            body=answer.body, status=status, content_type=answer.content_type, charset="utf-8",
            headers=open311.CORS,
        )  # fmt: skip
    if wants_json(request):
        body: dict[str, object] = {"error": message}
        field, sep, problem = message.partition(": ")
        if sep and field.replace("_", "").replace("-", "").isalnum():
            body["errors"] = {field: problem}  # the shape form refusals have
        elif request.path.startswith("/api/"):
            body["errors"] = {"request": message}  # the API's one shape of error
        return web.json_response(body, status=status)
    return error_page(request, status, translated(message))


def _nul_in_query(request: web.Request) -> web.Response | None:
    """The refusal (400, naming the parameter) of a query with a NUL in it: no text we keep
    or look for has one, and PostgreSQL refuses one in any text. (A path with one names
    nothing of ours: each route's own look-up answers 404.)"""
    if "%00" not in request.rel_url.raw_query_string:
        return None
    for name, value in request.query.items():
        if "\x00" in name or "\x00" in value:
            field = name[:64].replace("\x00", "") or "query"
            if request.path.startswith("/api/"):  # the API's one shape of error
                body = json.dumps({"errors": {field: translated(CONTROL)}}, ensure_ascii=False)
                return web.json_response(text=body, status=400)
            return _error(request, 400, f"{field}: {CONTROL}")
    return None


def said(exc: web.HTTPException) -> str:
    """A refusal's text as a catalog id (or "field: catalog id"): ours are that already;
    aiohttp's own ("404: Not Found", a body too large) are said in ours; others pass
    through."""
    text = exc.text or exc.reason
    if text == f"{exc.status}: {exc.reason}" and exc.status in PLAIN:
        return PLAIN[exc.status]
    if exc.status == 413 and text.startswith("Maximum request body size"):
        return f"body: {TOO_LARGE}"
    return text


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn aiohttp's bare 4xx errors (unknown route, wrong method, too large) into an HTML
    page or a JSON body; errors a view already rendered pass through untouched. A query
    with a NUL in it is refused here, for every route (400)."""
    if (refused := _nul_in_query(request)) is not None:
        return refused
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type != "text/plain":
            raise
        response = _error(request, exc.status, said(exc))
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except OSError as exc:
        # aiohttp's static files ask the file system for the name as given: one it refuses
        # as too long (a segment over 255 bytes, a path over 4,096) is no file of ours.
        if exc.errno != errno.ENAMETOOLONG or not request.path.startswith("/static/"):
            raise
        return _error(request, 404, web.HTTPNotFound().text or "Not Found")
