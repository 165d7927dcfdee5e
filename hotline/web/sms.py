"""Twilio's webhooks: inbound SMS (`POST /sms/twilio`) and delivery status callbacks."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from multidict import MultiDict

from hotline import appkeys
from hotline.channels.fields import FieldErrors, is_number
from hotline.channels.sms_twilio import parse_inbound, signature_valid, twiml
from hotline.queue.intake import CannotKeep
from hotline.service.i18n import gettext
from hotline.web.forms import read_form
from hotline.web.links import public_links
from hotline.web.middlewares import CANNOT_KEEP

log = logging.getLogger(__name__)
ERROR_CODE_MAX = 2**31 - 1  # the outbox's error_code column is a 32-bit integer


def _problem(status: int, errors: dict[str, str]) -> web.Response:
    return web.json_response({"errors": errors}, status=status)


def webhook_url(request: web.Request) -> str:
    """The URL Twilio signed: the public base URL (behind a proxy) plus our path."""
    public = request.app[appkeys.SETTINGS].public_url
    return public + request.path_qs if public else str(request.url)


async def _signed_form(request: web.Request) -> MultiDict[str] | web.Response:
    """The posted form, once it is well-formed and signed with our token; else the refusal."""
    token = request.app[appkeys.SETTINGS].webhook_token
    if token is None:
        return _problem(
            403, {"X-Twilio-Signature": "SMS webhook disabled: TWILIO_AUTH_TOKEN unset"}
        )
    if request.content_type != "application/x-www-form-urlencoded":
        return _problem(415, {"Content-Type": "must be application/x-www-form-urlencoded"})
    try:
        # A NUL is a control character like any other to a text (dropped from its body,
        # refused in other fields): Twilio does not retry a refusal, and the text is lost.
        params = await read_form(request, nul_ok=True)
    except web.HTTPBadRequest as exc:
        field, _, message = (exc.text or "").partition(": ")
        return _problem(400, {field: message})
    signature = request.headers.get("X-Twilio-Signature")
    if not signature_valid(token, webhook_url(request), params, signature):
        what = "does not match this request" if signature else "missing"
        log.warning("refused an SMS webhook with a %s signature", what)
        return _problem(403, {"X-Twilio-Signature": what})
    return params


def _reply(text: str | None) -> web.Response:
    return web.Response(text=twiml(text), content_type="application/xml")


async def inbound(request: web.Request) -> web.StreamResponse:
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    try:
        sms = parse_inbound(params)
    except FieldErrors as errors:
        return _problem(400, errors.english())
    desk = request.app[appkeys.TEXT_DESK]
    try:
        said = await desk.answer(sms, request.app[appkeys.CLOCK](), public_links(request))
    except CannotKeep:
        # Twilio does not send a webhook again: the sender is told to, in a reply (in the
        # point's language: the text's own is looked at only once it is kept).
        said = gettext(CANNOT_KEEP)
    return _reply(said)


async def status_callback(request: web.Request) -> web.StreamResponse:
    params = await _signed_form(request)
    if isinstance(params, web.Response):
        return params
    errors = {}
    sid = params.get("MessageSid", "")
    status = params.get("MessageStatus", "").strip().lower()
    code_text = params.get("ErrorCode", "").strip()
    if not sid.startswith(("SM", "MM")) or not sid.isalnum() or len(sid) != 34:
        errors["MessageSid"] = "missing or not a Twilio message SID"
    if not re.fullmatch(r"[a-z][a-z_-]{1,29}", status):  # Twilio's: partially_delivered
        errors["MessageStatus"] = "missing or not a status word"
    if code_text and not is_number(code_text):
        errors["ErrorCode"] = "not a number"
    elif code_text and int(code_text) > ERROR_CODE_MAX:
        errors["ErrorCode"] = f"at most {ERROR_CODE_MAX} (Twilio's codes have five digits)"
    ref_text = request.query.get("outbox")  # our row, in the URL we gave with the message
    if ref_text is not None and not (is_number(ref_text) and int(ref_text) > 0):
        errors["outbox"] = "not an outbox row id"
    if errors:
        return _problem(400, errors)
    now = request.app[appkeys.CLOCK]()
    error_code = int(code_text) if code_text else None
    ref = int(ref_text) if ref_text is not None else None
    outbox = request.app[appkeys.OUTBOX]
    if await outbox.apply_callback(sid, status, now, error_code=error_code, ref=ref) is None:
        log.info("status callback for a message that is not ours: %s", sid)
    return web.Response(status=204)
