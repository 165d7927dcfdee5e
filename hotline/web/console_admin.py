"""Heads' and admins' console pages: kiosk devices and QR-code posters."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.channels.fields import is_number
from hotline.service.i18n import N_, gettext, named
from hotline.service.kiosks import BadKiosk
from hotline.service.tokens import BadToken
from hotline.service.webhooks import BadWebhook
from hotline.web import auth
from hotline.web.console import page
from hotline.web.forms import read_form
from hotline.web.links import public_base
from hotline.web.qr import qr_data_uri
from hotline.web.render import render


async def kiosks(
    request: web.Request, *, created: Any = None, error: str | None = None
) -> web.StreamResponse:
    auth.require_head(request)
    devices = await request.app[appkeys.KIOSKS].devices()
    context = {"devices": devices, "created": created, "error": error}
    return page(request, "console/kiosks.html", context, 400 if error else 200)


async def kiosk_change(request: web.Request) -> web.StreamResponse:
    session = auth.require_head(request)
    form = await read_form(request)
    book = request.app[appkeys.KIOSKS]
    now = request.app[appkeys.CLOCK]()
    if form.get("revoke"):
        raw = str(form.get("revoke"))
        if not is_number(raw) or not await book.revoke(int(raw), session.member.id, now):
            message = gettext("no active kiosk with that number")
            return await kiosks(request, error=named("revoke", message))
        raise web.HTTPSeeOther(request.app.router["console-kiosks"].url_for())
    try:
        device_id, token = await book.register(str(form.get("name", "")), session.member.id, now)
    except BadKiosk as problem:
        return await kiosks(request, error=problem.explain())
    setup = public_base(request) + str(
        request.app.router["kiosk"].url_for().with_query(device=token)
    )
    # The token is shown this once: only its hash is stored.
    return await kiosks(request, created={"id": device_id, "token": token, "setup": setup})


async def tokens(
    request: web.Request, *, created: Any = None, error: str | None = None
) -> web.StreamResponse:
    auth.require_head(request)
    context = {
        "tokens": await request.app[appkeys.TOKENS].all(),
        "created": created,
        "error": error,
    }
    return page(request, "console/tokens.html", context, 400 if error else 200)


async def token_change(request: web.Request) -> web.StreamResponse:
    """Make a token (shown once) or revoke one, by name."""
    session = auth.require_head(request)
    form = await read_form(request)
    book = request.app[appkeys.TOKENS]
    now = request.app[appkeys.CLOCK]()
    try:
        if form.get("revoke"):
            await book.revoke(str(form.get("revoke"))[:100], session.member.id, now)
            raise web.HTTPSeeOther(request.app.router["console-tokens"].url_for())
        name = str(form.get("name", ""))[:100]
        secret = await book.create(name, str(form.get("scope", "")), session.member.id, now)
    except BadToken as problem:
        return await tokens(request, error=problem.explain())
    return await tokens(request, created={"name": name.strip(), "secret": secret})


async def webhooks(
    request: web.Request, *, created: Any = None, error: str | None = None
) -> web.StreamResponse:
    """Partners' webhooks, and what became of the latest deliveries."""
    auth.require_head(request)
    book = request.app[appkeys.WEBHOOKS]
    context = {
        "webhooks": await book.all(),
        "deliveries": await book.recent(100),
        "created": created,
        "error": error,
    }
    return page(request, "console/webhooks.html", context, 400 if error else 200)


async def webhook_change(request: web.Request) -> web.StreamResponse:
    """Register a webhook (its secret shown once, made here if left empty) or revoke one."""
    session = auth.require_head(request)
    form = await read_form(request)
    book = request.app[appkeys.WEBHOOKS]
    now = request.app[appkeys.CLOCK]()
    if form.get("revoke"):
        if not await book.revoke(str(form.get("revoke"))[:100], session.member.id, now):
            message = gettext("no active webhook by that name")
            return await webhooks(request, error=named("revoke", message))
        raise web.HTTPSeeOther(request.app.router["console-webhooks"].url_for())
    name = str(form.get("name", ""))[:100]
    try:
        secret = await book.register(
            name, str(form.get("url", "")), str(form.get("secret", "")), session.member.id, now
        )
    except BadWebhook as problem:
        return await webhooks(request, error=problem.explain())
    return await webhooks(request, created={"name": name.strip(), "secret": secret})


async def posters(request: web.Request, *, error: str | None = None) -> web.StreamResponse:
    auth.require_head(request)
    tags = await request.app[appkeys.KIOSKS].tags()
    return page(
        request, "console/posters.html", {"tags": tags, "error": error}, 400 if error else 200
    )


async def poster_add(request: web.Request) -> web.StreamResponse:
    session = auth.require_head(request)
    form = await read_form(request)
    try:
        await request.app[appkeys.KIOSKS].add_tag(
            str(form.get("tag", "")), str(form.get("label", "")), session.member.id,
            request.app[appkeys.CLOCK](),
        )  # fmt: skip
    except BadKiosk as problem:
        return await posters(request, error=problem.explain())
    raise web.HTTPSeeOther(request.app.router["console-posters"].url_for())


def poster_url(request: web.Request, tag: str) -> str:
    path = request.app.router["submit"].url_for().with_query(src=tag)
    return public_base(request) + str(path)


async def poster(request: web.Request) -> web.StreamResponse:
    """A printable A4 poster for one source tag: QR code to /submit?src=TAG."""
    auth.require_head(request)
    found = await request.app[appkeys.KIOSKS].tag(request.match_info["tag"])
    if found is None:
        raise web.HTTPNotFound(text=N_("no such poster tag"))
    tag, label = found
    url = poster_url(request, tag)
    context = {"tag": tag, "label": label, "poster_url": url, "qr": qr_data_uri(url, scale=12)}
    return render(request, "console/poster.html", context)
