"""Twilio's SMS webhooks: the form they post, their signature, keywords, and TwiML replies."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl

from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from hotline.channels.fields import FieldErrors, clean_text
from hotline.service.config import normalize_phone
from hotline.service.text import N_

BODY_MAX = 1600  # Twilio's own limit for one message
MEDIA_MAX = 10  # Twilio delivers at most 10 media per MMS
_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_BROKEN_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORDS = re.compile(r"[A-Za-z]{2,}")

STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "退订"}
)
START_WORDS = frozenset({"START", "UNSTOP", "订阅"})
HELP_WORDS = frozenset({"HELP", "帮助"})
_STATUS = re.compile(r"^(?:STATUS|查询)\s*[:：]?\s*([A-Za-z0-9-]*)$", re.IGNORECASE)


class BadBody(Exception):
    """The request body is not a well-formed application/x-www-form-urlencoded form."""


def parse_form(raw: bytes) -> MultiDict[str]:
    """Parse a urlencoded body strictly: broken %-escapes and invalid UTF-8 are errors
    (a lenient parser would silently turn them into other text)."""
    if _BROKEN_ESCAPE.search(raw):
        raise BadBody("body: broken percent-encoding")
    try:
        text = raw.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BadBody("body: not valid UTF-8 form data") from exc
    except ValueError as exc:
        raise BadBody(f"body: {exc}") from exc
    return MultiDict(pairs)


def signature_valid(token: str, url: str, params: MultiDict[str], signature: str | None) -> bool:
    """Twilio's check: HMAC-SHA1 over the full URL and every posted parameter."""
    if not signature:
        return False
    return bool(RequestValidator(token).validate(url, params, signature))


@dataclass(frozen=True)
class InboundSms:
    sid: str
    from_number: str
    to_number: str | None
    body: str
    media: tuple[tuple[str, str], ...]
    opt_out_type: str | None


def _single(params: MultiDict[str], name: str, errors: FieldErrors) -> str | None:
    values = params.getall(name, [])
    if len(values) > 1:
        errors.add(name, N_("Given more than once."))
        return None
    return values[0] if values else None


def parse_inbound(params: MultiDict[str]) -> InboundSms:
    """The fields of an inbound message; raises FieldErrors naming each bad one."""
    errors = FieldErrors()
    sid = _single(params, "MessageSid", errors)
    if sid is None or not _SID.match(sid):
        errors.add("MessageSid", N_("Missing or not a Twilio message SID."))
    sender = _single(params, "From", errors)
    from_number = None
    if sender is None or not sender.strip():
        errors.add("From", N_("This field is required."))
    else:
        try:
            from_number = normalize_phone(sender)
        except ValueError:
            errors.add("From", N_("Not a valid phone number."))
    raw_body = _single(params, "Body", errors)
    if raw_body is None:
        errors.add("Body", N_("This field is required."))
        body = None
    else:
        body = clean_text(errors, "Body", raw_body, max_length=BODY_MAX, multiline=True) or ""
    media = _media(params, errors)
    if errors:
        raise errors
    assert sid and from_number and body is not None
    opt_out = (_single(params, "OptOutType", errors) or "").strip().upper() or None
    return InboundSms(sid, from_number, params.get("To"), body, media, opt_out)


def _media(params: MultiDict[str], errors: FieldErrors) -> tuple[tuple[str, str], ...]:
    raw = _single(params, "NumMedia", errors) or "0"
    if not raw.isdigit() or int(raw) > MEDIA_MAX:
        errors.add("NumMedia", N_("Must be a whole number from 0 to 10."))
        return ()
    media = []
    for i in range(int(raw)):
        url = params.get(f"MediaUrl{i}", "")
        kind = params.get(f"MediaContentType{i}", "")
        if not url.startswith("https://") or len(url) > 2000 or _has_control(url):
            errors.add(f"MediaUrl{i}", N_("Missing or not an https URL."))
            continue
        media.append((url, kind[:100] if kind and not _has_control(kind) else ""))
    return tuple(media)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


@dataclass(frozen=True)
class Keyword:
    kind: str  # "stop", "start", "help", "status", "rating" or "text"
    code: str | None = None
    rating: int | None = None


def classify(body: str, opt_out_type: str | None = None) -> Keyword:
    """What a text asks for. Full-width letters and digits count as their ASCII forms."""
    if opt_out_type in ("STOP", "START", "HELP"):
        return Keyword(opt_out_type.lower())
    word = unicodedata.normalize("NFKC", body).strip()
    upper = word.upper()
    if upper in STOP_WORDS:
        return Keyword("stop")
    if upper in START_WORDS:
        return Keyword("start")
    if upper in HELP_WORDS:
        return Keyword("help")
    if word in ("1", "2", "3", "4", "5"):
        return Keyword("rating", rating=int(word))
    match = _STATUS.match(word)
    if match:
        return Keyword("status", code=match.group(1) or None)
    return Keyword("text")


def detect_language(text: str, default: str) -> str:
    """zh-CN when the text has Chinese characters; en when it is plainly English."""
    if _CJK.search(text):
        return "zh-CN"
    if len(_LATIN_WORDS.findall(text)) >= 1 and not re.search(r"[^\x00-\x7f]", text):
        return "en"
    return default


def twiml(message: str | None) -> str:
    """A TwiML reply: one message, or none at all."""
    response = MessagingResponse()
    if message:
        response.message(message)
    return str(response)
