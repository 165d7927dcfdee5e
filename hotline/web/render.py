"""Pages in the reader's language: the language of each request (an explicit switch, then
Accept-Language, then the point's default), the Jinja environment with the catalogs of
service/i18n.py installed, and `render`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from yarl import URL

from hotline import appkeys
from hotline.service.cases import from_utc_text
from hotline.service.config import display_phone
from hotline.service.i18n import (
    DURATION_UNITS,
    LANGUAGES,
    gettext,
    listing,
    ngettext,
    use_language,
)
from hotline.service.labels import LABELS

LANG_COOKIE = "hotline_lang"


def _accept_language(header: str) -> list[str]:
    """Languages from an Accept-Language header, best first (q=0 excluded)."""
    weighted = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            weighted.append((-q, i, tag.strip().lower()))
    return [tag for _, _, tag in sorted(weighted)]


def choose_language(request: web.Request) -> str:
    explicit = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    if explicit in LANGUAGES:
        return explicit
    for tag in _accept_language(request.headers.get("Accept-Language", "")):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return request.app[appkeys.DIRECTORY].config.point.language


@web.middleware
async def language(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    lang = choose_language(request)
    request[appkeys.LANG] = lang
    use_language(lang)
    response = await handler(request)
    if request.query.get("lang") in LANGUAGES and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax", path="/"
        )
    return response


def setup_i18n(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("hotline.web", "templates"),
        extensions=["jinja2.ext.i18n"],
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals["labels"] = LABELS
    tz = app[appkeys.DIRECTORY].config.point.timezone
    env.filters["phone"] = display_phone  # 0573-85123456, 139 0000 0001
    env.filters["listing"] = listing  # 甲、乙 / A, B
    # The console clocks' units, in the reader's language (console.js fills them in).
    env.globals["duration_units"] = lambda: {k: gettext(v) for k, v in DURATION_UNITS.items()}
    env.filters["localtime"] = lambda at: at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    # Times stored as UTC text (event details), shown the same way.
    env.filters["localtext"] = lambda text: (
        from_utc_text(text).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    )
    app.middlewares.insert(0, language)


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    here: URL | None = None,
) -> web.Response:
    """Render a page with what every page needs (language, switch link, the point). The
    language switch reloads `here` (default: this request's address)."""
    lang = request.get(appkeys.LANG) or request.app[appkeys.DIRECTORY].config.point.language
    other = "en" if lang == "zh-CN" else "zh-CN"
    page = {
        "lang": lang,
        "point": request.app[appkeys.DIRECTORY].config.point,
        "switch_lang": other,
        "switch_url": str((here or request.rel_url).update_query(lang=other)),
    }
    return aiohttp_jinja2.render_template(template, request, page | context, status=status)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """The error page: the message, and the way back from it. A member's error in the
    console keeps the console around it. The language switch of a refused POST goes where
    the way back goes (the POST's own address cannot be opened)."""
    back = _back(request, status)
    page: dict[str, Any] = {"status": status, "message": message, "back": back}
    here = None if request.method == "GET" else URL(back or "/submit")
    session = request.get(appkeys.SESSION)
    if back is not None and session is not None:
        page |= {"session": session, "csrf": session.csrf}
        return render(request, "console/error.html", page, status=status, here=here)
    return render(request, "error.html", page, status=status, here=here)


def _back(request: web.Request, status: int) -> str | None:
    """Where a member goes back to from an error in the console: the case it was about (one
    that exists), else the list of cases (None outside the console: the public form)."""
    if not request.path.startswith("/console/") or request.path == "/console/login":
        return None
    code = request.match_info.get("code") if request.path.startswith("/console/cases/") else None
    if code and status != 404:
        return str(request.app.router["console-case"].url_for(code=code))
    return str(request.app.router["console-cases"].url_for())
