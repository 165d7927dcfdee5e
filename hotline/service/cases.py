"""Cases as plain data: the intake record every channel builds, case codes and statuses, and
a stored case with its events and messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import unicodedata
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

log = logging.getLogger(__name__)

# No 0/O, 1/I/L or U/V look-alikes: a code read aloud or typed on a phone keypad survives.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_LENGTH = 7
CHANNELS = ("web", "sms", "kiosk", "walk-in", "open311", "api")
# Statuses after which a case takes no more follow-ups as part of it.
FINISHED = frozenset({"resolved", "closed", "withdrawn", "rejected"})


class Status(StrEnum):
    RECEIVED = "received"
    ASSIGNED = "assigned"
    ACKNOWLEDGED = "acknowledged"
    REFERRED = "referred"
    RESPONDED = "responded"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


def code_for(secret: bytes, intake_key: str, attempt: int) -> str:
    """The `attempt`-th candidate code of an intake key: fixed for the key, unguessable
    without the secret. Intake tries the candidates in order, and the spool uses the first,
    so when Redis took an intake but its answer was lost (the connection dropped mid-call)
    the code spooled for the submitter is the code Redis reserved."""
    digest = hmac.new(secret, f"{intake_key}\x00{attempt}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big")
    chars = []
    for _ in range(CODE_LENGTH):
        value, index = divmod(value, len(CODE_ALPHABET))
        chars.append(CODE_ALPHABET[index])
    return "".join(chars)


def normalize_code(text: str) -> str | None:
    """What a person typed -> the canonical code, or None if it cannot be one. Full-width
    letters and digits (a Chinese input method) count as their ASCII forms; spaces and
    dashes of any kind are left out."""
    code = "".join(
        ch for ch in unicodedata.normalize("NFKC", text[:64])
        if not ch.isspace() and unicodedata.category(ch) != "Pd"
    ).upper()  # fmt: skip
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc_text(at: datetime) -> str:
    """The one way times are written to storage and JSON: UTC, fixed width, sortable."""
    # isoformat, not strftime: the same text ("%Y-%m-%dT%H:%M:%S.%fZ"), a tenth of the time.
    if at.tzinfo is not UTC:
        at = at.astimezone(UTC)
    return at.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def from_utc_text(text: str) -> datetime:
    if len(text) != 27 or text[-1] != "Z":
        raise ValueError(f"not a stored UTC time: {text!r}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Intake:
    """One request as a channel received it, before it is a case.

    `key` makes intake idempotent: the same key (Twilio's MessageSid, a form's one-time
    token, a kiosk's client-made key) always maps to the same case code.
    """

    key: str
    channel: str
    text: str
    received_at: datetime
    language: str
    category: str | None = None
    company: str | None = None
    name: str | None = None
    phone: str | None = None
    source_tag: str | None = None
    media: tuple[tuple[str, str], ...] = ()  # (url, content type) of MMS attachments
    urgent: bool = False  # the submitter marked it urgent (a hazard): the standing head hears
    taken_by: str | None = None  # the member who took a walk-in request at the kiosk
    reception_id: int | None = None  # raised at this themed reception (entered by a deputy)
    address: str | None = None  # where it is, as an Open311 client gave it
    latitude: float | None = None  # WGS 84 degrees, with `longitude`
    longitude: float | None = None

    def to_json(self) -> str:
        # Field by field, not dataclasses.asdict (which deep-copies): on every intake. The
        # place only when there is one: a worker older than it reads the rest as before.
        data: dict[str, Any] = {name: getattr(self, name) for name in _INTAKE_FIELDS}
        if self.address is None and self.latitude is None and self.longitude is None:
            for name in _PLACE_FIELDS:
                del data[name]
        data["received_at"] = to_utc_text(self.received_at)
        return _INTAKE_JSON.encode(data)

    @classmethod
    def from_json(cls, text: str) -> Intake:
        """Parse a stored intake; ValueError (or KeyError/TypeError) when it is malformed."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("intake payload is not an object")
        data["received_at"] = from_utc_text(data["received_at"])
        data["media"] = tuple((str(url), str(kind)) for url, kind in data.get("media", ()))
        unknown = data.keys() - _INTAKE_FIELDS
        if unknown:  # written by a newer version: what this one knows of it is stored
            log.warning("intake %s has fields this version does not know: %s",
                        data.get("key"), ", ".join(sorted(unknown)))  # fmt: skip
            for name in unknown:
                del data[name]
        intake = cls(**data)
        for name in ("key", "channel", "language"):
            if not isinstance(getattr(intake, name), str) or not getattr(intake, name):
                raise ValueError(f"intake field {name} is missing")
        if intake.reception_id is not None and type(intake.reception_id) is not int:
            raise ValueError("intake field reception_id is not a number")
        if intake.address is not None and not isinstance(intake.address, str):
            raise ValueError("intake field address is not text")
        for name, limit in (("latitude", 90), ("longitude", 180)):
            value = getattr(intake, name)
            if value is not None and (
                type(value) not in (int, float) or not -limit <= value <= limit
            ):
                raise ValueError(f"intake field {name} is not a position in degrees")
        if (intake.latitude is None) != (intake.longitude is None):
            raise ValueError("intake fields latitude and longitude go together")
        if not isinstance(intake.text, str) or not (intake.text or intake.media):
            raise ValueError("intake has neither text nor media")
        return intake


_INTAKE_FIELDS = tuple(f.name for f in fields(Intake))
_PLACE_FIELDS = ("address", "latitude", "longitude")
# One encoder for every intake (json.dumps with options builds a new one each call).
_INTAKE_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Message:
    at: datetime
    direction: str
    channel: str
    body: str
    media: list[tuple[str, str]]
    public: bool = False  # a reply shown on /track (see tracking.is_public_reply)


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: str
    status: str
    actor: str | None
    detail: dict[str, Any]


ReferralState = Literal["on-time", "late", "taken-back", "taken-back-late", "waiting", "overdue"]


@dataclass(frozen=True)
class Referral:
    """One referral (交办) of a case: where it went, when it was due, and how it ended."""

    department_id: str
    referred_at: datetime
    due: datetime
    answered_at: datetime | None  # the department's answer (or the outcome, if first)
    ended_at: datetime | None  # taken back unanswered (referred again, reassigned...)

    def state(self, now: datetime) -> ReferralState:
        """answered on time, answered late, taken back, taken back late, waiting, overdue."""
        if self.answered_at is not None:
            return "on-time" if self.answered_at <= self.due else "late"
        if self.ended_at is not None:
            return "taken-back-late" if self.ended_at > self.due else "taken-back"
        return "overdue" if now > self.due else "waiting"


@dataclass(frozen=True)
class Case:
    id: int
    code: str
    intake_key: str
    channel: str
    status: str
    text: str
    language: str
    category: str | None
    company: str | None
    submitter_name: str | None
    submitter_phone: str | None
    source_tag: str | None
    assignee_id: str | None
    assignee_name: str | None
    received_at: datetime
    updated_at: datetime
    rating: int | None = None
    rating_requested_at: datetime | None = None
    rated_at: datetime | None = None
    department_id: str | None = None
    referral_due: datetime | None = None
    presidium: bool = False
    outcome: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    held_until: datetime | None = None
    urgent: bool = False
    escalations: int = 0
    waiting_since: datetime | None = None
    taken_by: str | None = None
    reopens: int = 0  # times reopened after a resolution
    referral_answered_at: datetime | None = None  # the department answered the latest referral
    closed_at: datetime | None = None  # closed, withdrawn or rejected at
    first_response_due: datetime | None = None  # its targets, stored when it came in
    resolution_due: datetime | None = None
    reception_id: int | None = None  # raised at this themed reception
    address: str | None = None  # where it is, as an Open311 client gave it
    latitude: float | None = None
    longitude: float | None = None

    def contact_seen_by(self, member_id: str, role: str) -> bool:
        """Whether a member may see who made the request (name, phone): the member handling
        it, and the heads and admins — as the public form promises. Others act on it all
        the same (a reply is texted without their seeing the number)."""
        return role in ("head", "admin") or member_id == self.assignee_id

    @property
    def with_department(self) -> str | None:
        """The department the case is with, or whose answer it has: its latest referral's
        (department_id), unless that was taken back unanswered (withdrawn or rejected while
        referred, or from before a reassign kept a referral: the case left `referred` with
        no answer)."""
        if self.status == "referred" or self.referral_answered_at is not None:
            return self.department_id
        return None

    @property
    def rating_pending(self) -> bool:
        """Resolved, the submitter was asked for a rating, and none has come since (one given
        for an earlier resolution stays, and counts, until the new one replaces it)."""
        asked = self.rating_requested_at
        if self.status != "resolved" or asked is None:
            return False
        # (A rating always ends `resolved`: one at the very instant of asking is older.)
        return self.rating is None or self.rated_at is None or self.rated_at <= asked
