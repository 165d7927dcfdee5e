"""Every posted form is read here, once per request, strictly (channels/forms.py): a malformed
body is a 400 naming the problem, never a 500 and never text stored as U+FFFD."""

from __future__ import annotations

import re

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDict

from hotline import appkeys
from hotline.channels.forms import (
    FORM_TYPES,
    MULTIPART,
    BadForm,
    check_charset,
    parse_urlencoded,
    part_value,
    refuse_nul,
)
from hotline.service.i18n import N_

_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,64}\Z")
MAX_FIELDS = 100


async def read_form(request: web.Request, *, nul_ok: bool = False) -> MultiDict[str]:
    """The posted form's fields as text (cached on the request). With `nul_ok` a NUL is
    left to the channel's own checks (a text drops it with the other control characters)."""
    if appkeys.FORM in request:
        return request[appkeys.FORM]
    if request.content_type not in FORM_TYPES:
        raise web.HTTPUnsupportedMediaType(
            text=N_("send the form as application/x-www-form-urlencoded or multipart/form-data")
        )
    try:
        check_charset(request.charset)
        if request.content_type == MULTIPART:
            form = await _multipart(request)
        else:
            form = parse_urlencoded(await request.read(), nul_ok=nul_ok)
    except BadForm as exc:
        raise web.HTTPBadRequest(text=exc.message) from None
    except RequestPayloadError:
        raise web.HTTPBadRequest(text=N_("body: cannot be decoded (Content-Encoding)")) from None
    request[appkeys.FORM] = form
    return form


async def _multipart(request: web.Request) -> MultiDict[str]:
    limit = request.app._client_max_size  # the same cap aiohttp applies to other bodies
    try:
        reader = await request.multipart()
        form: MultiDict[str] = MultiDict()
        size = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadForm(N_("body: nested multipart is not accepted"))
            if part.filename is not None:
                raise BadForm(N_("body: files are not accepted"))
            if not part.name or not _NAME.match(part.name):
                raise BadForm(N_("body: a field has no usable name"))
            check_charset(part.get_charset(default="utf-8"))
            raw = bytearray()
            while chunk := await part.read_chunk():
                size += len(chunk)
                if size > limit:
                    raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
                raw.extend(chunk)
            value = part_value(part.headers, bytes(raw))
            refuse_nul(part.name, value)
            form.add(part.name, value)
            if len(form) > MAX_FIELDS:
                raise BadForm(N_("body: too many fields"))
    except (ValueError, AssertionError, LookupError, HttpProcessingError):
        raise BadForm(N_("body: not well-formed multipart form data")) from None
    return form
