"""Twilio's webhooks: inbound SMS (`POST /sms/twilio`) and delivery status callbacks."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from multidict import MultiDict

from hotline import appkeys
from hotline.channels.fields import FieldErrors
from hotline.channels.sms_twilio import (
    BadBody,
    InboundSms,
    Keyword,
    classify,
    detect_language,
    parse_form,
    parse_inbound,
    signature_valid,
    twiml,
)
from hotline.service.cases import FINISHED, Intake, normalize_code
from hotline.service.ports import OPTED_OUT_CODE
from hotline.service.text import N_, translate

log = logging.getLogger(__name__)

STATUS_LABELS = {
    "received": N_("Received"),
    "assigned": N_("Assigned to a deputy"),
    "acknowledged": N_("Taken up"),
    "referred": N_("Referred to a department"),
    "responded": N_("Answered"),
    "resolved": N_("Resolved"),
    "closed": N_("Closed"),
    "reopened": N_("Reopened"),
    "withdrawn": N_("Withdrawn"),
    "rejected": N_("Not accepted"),
}


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
        params = parse_form(await request.read())
    except BadBody as exc:
        field, _, message = str(exc).partition(": ")
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
    config = request.app[appkeys.DIRECTORY].config
    lang = detect_language(sms.body, config.point.language)
    keyword = classify(sms.body, sms.opt_out_type)
    outbox = request.app[appkeys.OUTBOX]
    now = request.app[appkeys.CLOCK]()

    if keyword.kind == "stop":
        await outbox.set_opt_out(sms.from_number, True, "keyword", now)
        return _reply(None)  # nothing more is ever sent to this number, this reply included
    if keyword.kind == "start":
        await outbox.set_opt_out(sms.from_number, False, "keyword", now)
        return _reply(translate(lang, N_("You will get texts from the hotline again.")))
    silent = await outbox.is_opted_out(sms.from_number)
    text = await _answer(request, sms, keyword, lang)
    return _reply(None if silent else text)


async def _answer(request: web.Request, sms: InboundSms, keyword: Keyword, lang: str) -> str:
    config = request.app[appkeys.DIRECTORY].config
    store = request.app[appkeys.STORE]
    if keyword.kind == "help":
        return _help(request, lang)
    if keyword.kind == "status":
        return await _status(request, sms.from_number, keyword.code, lang)
    if keyword.kind == "rating" and keyword.rating is not None:
        case = await store.rating_pending_for(sms.from_number)
        if case is not None and case.status == "resolved":
            now = request.app[appkeys.CLOCK]()
            await request.app[appkeys.CASEWORK].rate(case, keyword.rating, now, "sms")
            return translate(
                lang, N_("Thank you for rating request %(code)s: %(rating)d of 5.")
            ) % {
                "code": case.code,
                "rating": keyword.rating,
            }
    if not sms.body and not sms.media:
        return _help(request, lang)

    queue = request.app[appkeys.INTAKE]
    thread = await queue.thread_of(sms.from_number)
    if thread:
        current = await store.case_by_code(thread)
        if current is not None and current.status in FINISHED:
            await queue.end_thread(sms.from_number)
    intake = Intake(
        key=f"sms:{sms.sid}",
        channel="sms",
        text=sms.body,
        received_at=request.app[appkeys.CLOCK](),
        language=lang,
        phone=sms.from_number,
        media=sms.media,
    )
    submitted = await queue.submit(intake, thread_within=config.sms.thread_within)
    if submitted.follow_up:
        return translate(lang, N_("Added to your request %(code)s.")) % {"code": submitted.code}
    received = N_(
        "Received: request %(code)s. The deputy on duty will take it up."
        " Text STATUS %(code)s for progress, or see %(url)s"
    )
    reply = translate(lang, received) % {
        "code": submitted.code,
        "url": _track_url(request, submitted.code),
    }
    policy = await request.app[appkeys.DUTY].policy(intake.received_at)
    resumes = policy.handling_resumes(intake.received_at)
    if resumes is not None:
        when = resumes.astimezone(config.point.timezone).strftime("%Y-%m-%d %H:%M")
        later = N_("Outside duty hours now: handling resumes at %(time)s.")
        reply = translate(lang, later) % {"time": when} + " " + reply
    return reply


def _help(request: web.Request, lang: str) -> str:
    text = N_(
        "%(point)s, 24-hour hotline: text your request and you get a case code."
        " STATUS <code> for progress. STOP to opt out, START to opt in again."
    )
    return translate(lang, text) % {"point": request.app[appkeys.DIRECTORY].config.point.name}


async def _status(request: web.Request, phone: str, typed: str | None, lang: str) -> str:
    store = request.app[appkeys.STORE]
    if typed is None:  # a bare STATUS: the number's newest request
        case = await store.latest_case_from(phone)
    else:
        code = normalize_code(typed)
        case = await store.case_by_code(code) if code else None
    # Only the number that made a request may ask about it by text.
    if case is None or case.submitter_phone != phone:
        if typed is None:
            return translate(lang, N_("No request was made from this number."))
        unknown = N_("No request %(code)s was made from this number.")
        return translate(lang, unknown) % {"code": typed.upper()}
    tz = request.app[appkeys.DIRECTORY].config.point.timezone
    return translate(lang, N_("Request %(code)s: %(status)s (updated %(time)s).")) % {
        "code": case.code,
        "status": translate(lang, STATUS_LABELS.get(case.status, case.status)),
        "time": case.updated_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
    }


def _track_url(request: web.Request, code: str) -> str:
    base = request.app[appkeys.SETTINGS].public_url or f"{request.scheme}://{request.host}"
    return base + str(request.app.router["track"].url_for(code=code))


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
    if not re.fullmatch(r"[a-z][a-z-]{1,19}", status):
        errors["MessageStatus"] = "missing or not a status word"
    if code_text and not code_text.isdigit():
        errors["ErrorCode"] = "not a number"
    if errors:
        return _problem(400, errors)
    now = request.app[appkeys.CLOCK]()
    error_code = int(code_text) if code_text else None
    outbox = request.app[appkeys.OUTBOX]
    item = await outbox.apply_callback(sid, status, now, error_code=error_code)
    if item is None:
        log.info("status callback for a message that is not ours: %s", sid)
    elif error_code == OPTED_OUT_CODE:
        await outbox.set_opt_out(item.to_number, True, "provider-21610", now)
    return web.Response(status=204)
