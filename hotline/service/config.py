"""The point config: what it holds (frozen dataclasses) and the value formats it shares
(durations, phone numbers). `configfile.py` reads a file and checks every key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers

LANGUAGES = ("zh-CN", "en")
ROLES = ("rep", "head", "admin")
HOLIDAY_CALENDARS = ("cn",)
OUTSIDE_HOURS = ("hold", "standing-head")
# Ids of members and departments, codes of categories: cases and reports refer to them.
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")
_DURATION = re.compile(r"^(\d+)([smhdw])\Z")
# A Chinese mobile number as carriers and Twilio write it: eleven digits after +86, the
# first a 1. Every one is a possible number (phonenumbers agrees: a test holds them equal).
_CN_MOBILE_E164 = re.compile(r"\+861[0-9]{10}\Z")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Any duration longer than this is a typo (and dates that far out overflow).
MAX_DURATION = timedelta(days=366)


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every one found, each naming its key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Point:
    id: str
    name: str
    timezone: ZoneInfo
    language: str
    sms_numbers: tuple[str, ...]


@dataclass(frozen=True)
class DutyHours:
    """When someone is on duty: every day or workdays only, from `start` to `end` local."""

    days: str  # "daily" | "workdays"
    start: time
    end: time


@dataclass(frozen=True)
class DayNote:
    """A day the point's config sets: a holiday (`off`) or a make-up workday (调休上班).
    These win over the holiday package (whose data ends with its release year)."""

    day: date
    off: bool
    name: str


@dataclass(frozen=True)
class Duty:
    rotation: tuple[str, ...]
    start: date
    handoff: time
    period: timedelta
    standing_head: str
    ack_within: timedelta
    holidays: str | None
    hours: DutyHours | None = None  # None: around the clock (24x7)
    remind_every: timedelta = timedelta(minutes=30)  # repeat escalations this often
    outside_hours: str = "hold"  # "hold" for the next shift, or "standing-head"
    days: tuple[DayNote, ...] = ()  # [[duty.holiday]] and [[duty.workday]]


@dataclass(frozen=True)
class Targets:
    """How fast the point means to answer: first response and resolution, from receipt."""

    respond_within: timedelta = timedelta(hours=4)
    resolve_within: timedelta = timedelta(days=15)
    # A resolved case with no rating after this long closes by itself.
    rating_wait: timedelta = timedelta(days=7)


@dataclass(frozen=True)
class Sms:
    # A text from a number with an open SMS case it opened this recently joins that case.
    thread_within: timedelta = timedelta(hours=4)


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    phone: str | None
    role: str
    companies: tuple[str, ...]


@dataclass(frozen=True)
class Department:
    id: str
    name: str


@dataclass(frozen=True)
class Category:
    code: str
    names: dict[str, str]
    department: str | None
    respond_within: timedelta | None = None  # overrides [cases] respond_within
    resolve_within: timedelta | None = None

    def name(self, language: str) -> str:
        return self.names["en" if language == "en" else "zh"]


@dataclass(frozen=True)
class PointConfig:
    point: Point
    duty: Duty
    members: tuple[Member, ...]
    departments: tuple[Department, ...]
    categories: tuple[Category, ...]
    sms: Sms = field(default_factory=Sms)
    targets: Targets = field(default_factory=Targets)
    _members: dict[str, Member] = field(init=False, repr=False, compare=False)
    _categories: dict[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_members", {m.id: m for m in self.members})
        object.__setattr__(self, "_categories", {c.code: c for c in self.categories})

    def member(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def member_with_phone(self, e164: str) -> Member | None:
        """A member whose phone this is (two may share one: either)."""
        return next((m for m in self.members if m.phone == e164), None)

    def category(self, code: str) -> Category | None:
        return self._categories.get(code)

    def department(self, dept_id: str) -> Department | None:
        return next((d for d in self.departments if d.id == dept_id), None)

    def targets_for(self, category: str | None) -> tuple[timedelta, timedelta]:
        """(respond within, resolve within) for a category, or the point's defaults."""
        found = self.category(category) if category else None
        respond = (found.respond_within if found else None) or self.targets.respond_within
        resolve = (found.resolve_within if found else None) or self.targets.resolve_within
        return respond, resolve


def parse_duration(text: str) -> timedelta:
    """'30m', '12h', '1d', '7d', '2w' -> timedelta, at most MAX_DURATION; ValueError on
    anything else."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 30m, 12h, 1d or 7d")
    seconds = int(match.group(1)) * _SECONDS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than a year ({MAX_DURATION.days}d)")
    return timedelta(seconds=seconds)


def normalize_phone(text: str, region: str = "CN", *, strict: bool = True) -> str:
    """A phone number as E.164; ValueError when it is not a valid number. Without `strict`
    (a number the carrier reports, such as an SMS sender) a number of a possible length is
    enough: a range newer than the installed metadata must not lose the text."""
    if not strict and _CN_MOBILE_E164.match(text):
        return text  # the common sender, already E.164: parsing it was a tenth of an SMS
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{text!r} is not a phone number") from exc
    valid = phonenumbers.is_valid_number if strict else phonenumbers.is_possible_number
    if not valid(number):
        raise ValueError(f"{text!r} is not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


_NOT_TEXTABLE = frozenset({
    phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.TOLL_FREE,
    phonenumbers.PhoneNumberType.PREMIUM_RATE, phonenumbers.PhoneNumberType.SHARED_COST,
    phonenumbers.PhoneNumberType.UAN, phonenumbers.PhoneNumberType.VOICEMAIL,
})  # fmt: skip


def takes_texts(e164: str) -> bool:
    """False for a number no text can reach: a landline (0573-85012345), a toll-free, premium
    or shared-cost one. A mobile, or one that may be either (as in North America), is True."""
    number = phonenumbers.parse(e164, "CN")
    return phonenumbers.number_type(number) not in _NOT_TEXTABLE


def display_phone(e164: str) -> str:
    """A number as people in China write it: a landline with its area code and a hyphen
    (0573-85123456), a mobile in threes and fours (139 0000 0001); a foreign one in the
    international form. Anything unparsable is shown as stored."""
    try:
        number = phonenumbers.parse(e164, "CN")
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code != 86:
        return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
    national = str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))
    if national.startswith("0"):  # a landline: its area code, then the number
        area, _, rest = national.partition(" ")
        return f"{area}-{rest.replace(' ', '')}" if rest else national
    return national


def demo_config_path() -> Path:
    """The bundled demo point: the Jiachuang Zhigu liaison point of the article."""
    return Path(str(resources.files("hotline.service").joinpath("demo/point.toml")))
