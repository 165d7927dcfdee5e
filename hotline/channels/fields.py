"""Checks shared by every channel: clean text, phone numbers, tags. Messages name the field."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from hotline.service.config import normalize_phone, takes_texts
from hotline.service.i18n import N_, gettext
from hotline.service.text import CONTROL, normalized

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\Z")
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}\Z")
_NUMBER = re.compile(r"[0-9]{1,12}")


def is_number(text: str) -> bool:
    """A whole number in ASCII digits that fits a database integer ("²".isdigit() is true,
    and int() of a 5,000-digit string is no id)."""
    return bool(_NUMBER.fullmatch(text))


@dataclass
class FieldErrors(Exception):
    """Every problem with one submission, field -> (message, parameters)."""

    errors: dict[str, tuple[str, dict[str, object]]] = field(default_factory=dict)

    def add(self, name: str, message: str, **params: object) -> None:
        self.errors.setdefault(name, (message, params))

    def __bool__(self) -> bool:
        return bool(self.errors)

    def english(self) -> dict[str, str]:
        return {name: msg % params for name, (msg, params) in self.errors.items()}

    def translated(self) -> dict[str, str]:
        """field -> message, in the language of the request being served."""
        return {name: gettext(msg) % params for name, (msg, params) in self.errors.items()}


def blank(value: str | None) -> bool:
    """Nothing a reader would see: spaces and invisible format characters (U+200B...)."""
    return value is None or all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in value)


def clean_text(
    errors: FieldErrors,
    name: str,
    value: str | None,
    *,
    max_length: int,
    required: bool = False,
    multiline: bool = False,
) -> str | None:
    """Normalized text, or None (when empty and optional, or with an error recorded). Text
    of nothing but spaces and invisible format characters (U+200B...) counts as empty."""
    if value is None or blank(value):
        if required:
            errors.add(name, N_("This field is required."))
        return None
    text = normalized(value)
    if CONTROL.search(text) or (not multiline and ("\n" in text or "\t" in text)):
        errors.add(name, N_("Contains control characters or line breaks that are not allowed."))
        return None
    if len(text) > max_length:
        errors.add(
            name,
            N_("Too long: at most %(max)d characters (this has %(length)d)."),
            max=max_length,
            length=len(text),
        )
        return None
    return text


def clean_phone(
    errors: FieldErrors, name: str, value: str | None, *, required: bool = False
) -> str | None:
    text = clean_text(errors, name, value, max_length=32, required=required)
    if text is None:
        return None
    if any(ch.isalpha() for ch in text):  # phonenumbers reads keypad letters as digits
        errors.add(name, N_("Not a valid phone number."))
        return None
    try:
        number = normalize_phone(text)
    except ValueError:
        errors.add(name, N_("Not a valid phone number."))
        return None
    if not takes_texts(number):  # every number given here is one we text
        errors.add(name, N_("A mobile number, please: texts cannot reach this one."))
        return None
    return number


def clean_tag(errors: FieldErrors, name: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    tag = value.strip().lower()
    if not _TAG.match(tag):
        errors.add(name, N_("Not a valid source tag."))
        return None
    return tag


def is_tag(value: str | None) -> bool:
    return value is not None and bool(_TAG.match(value.strip().lower()))


def clean_key(errors: FieldErrors, name: str, value: str | None) -> str | None:
    """A client-made idempotency key: 16 to 64 of [A-Za-z0-9_-]."""
    if value is None or value == "":
        return None
    if not _KEY.match(value):
        errors.add(name, N_("Not a valid idempotency key (16 to 64 letters, digits, - or _)."))
        return None
    return value
