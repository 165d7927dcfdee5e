"""The public base URL of the service: HOTLINE_PUBLIC_URL, else the address this request came
to (a development setup); links for texts, slips and posters are built from it."""

from __future__ import annotations

from aiohttp import web

from hotline import appkeys
from hotline.service.links import Links


def public_base(request: web.Request) -> str:
    return request.app[appkeys.SETTINGS].public_url or f"{request.scheme}://{request.host}"


def public_links(request: web.Request) -> Links:
    return Links(public_base(request))
