"""Posted forms, read strictly: urlencoded or multipart, UTF-8 only. A lenient reader turns
broken bytes into other text (U+FFFD) or a 500; this one names what is wrong instead."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl

from multidict import CIMultiDictProxy, MultiDict
from yarl import query_to_pairs

from hotline.service.i18n import N_

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = (URLENCODED, MULTIPART)
_BROKEN_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_UTF8 = ("", "utf-8", "utf8")
REPLACEMENT = "\ufffd"


class BadForm(Exception):
    """The body is not a well-formed form. `message` is a catalog id naming the problem."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def check_charset(charset: str | None) -> None:
    if (charset or "").strip().lower() not in _UTF8:
        raise BadForm(N_("body: only UTF-8 is accepted (charset=utf-8)"))


# No text we keep has a NUL in it, and PostgreSQL cannot store one: refused on every form,
# naming the field as the fields' own checks do (channels/fields.py, clean_text).
NUL_IN_NAME = N_("body: a field name contains a NUL character")
CONTROL = N_("Contains control characters or line breaks that are not allowed.")


def refuse_nul(name: str, value: str) -> None:
    if "\x00" in name:
        raise BadForm(NUL_IN_NAME)
    if "\x00" in value:
        raise BadForm(f"{name[:64]}: {CONTROL}")


def parse_urlencoded(raw: bytes, *, nul_ok: bool = False) -> MultiDict[str]:
    """Parse a urlencoded body strictly: broken %-escapes and invalid UTF-8 are errors, and
    so is a NUL unless `nul_ok` (the caller then checks each field for it)."""
    if _BROKEN_ESCAPE.search(raw):
        raise BadForm(N_("body: broken percent-encoding"))
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadForm(N_("body: not valid UTF-8 form data")) from None
        # Valid UTF-8 sent as it is: a form's characters travel %-escaped (中 as %E4%B8%AD).
        raise BadForm(N_("body: characters outside ASCII must be percent-encoded")) from None
    # yarl's parser (aiohttp's own, in C: an eighth of parse_qsl's time) answers what
    # parse_qsl answers, but puts U+FFFD for bytes that are not UTF-8: where one appears,
    # parse_qsl's strict decoding tells a broken body from a U+FFFD sent as such.
    pairs = query_to_pairs(text)
    if any(REPLACEMENT in name or REPLACEMENT in value for name, value in pairs):
        try:
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadForm(N_("body: not valid UTF-8 form data")) from None
    if not nul_ok:
        for key, value in pairs:
            refuse_nul(key, value)
    return MultiDict(pairs)


def part_value(headers: CIMultiDictProxy[str], raw: bytes) -> str:
    """One multipart field's text: its transfer encoding undone strictly, UTF-8 only."""
    encoding = headers.get("Content-Transfer-Encoding", "").strip().lower()
    try:
        if encoding == "base64":
            raw = base64.b64decode(b"".join(raw.split()), validate=True)
        elif encoding == "quoted-printable":
            raw = binascii.a2b_qp(raw)
        elif encoding not in ("", "7bit", "8bit", "binary"):
            raise BadForm(N_("body: unknown Content-Transfer-Encoding of a field"))
    except binascii.Error:
        raise BadForm(N_("body: a field's base64 is broken")) from None
    if headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise BadForm(N_("body: compressed form fields are not accepted"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadForm(N_("body: a field is not valid UTF-8")) from None
    return text
