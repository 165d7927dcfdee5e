"""Reading and checking a point config file (TOML): every problem found is listed, each
naming its key, e.g. `duty.rotation[1]: unknown member 'zz'`."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hotline.service.config import (
    HOLIDAY_CALENDARS,
    ID_PATTERN,
    LANGUAGES,
    OUTSIDE_HOURS,
    ROLES,
    Category,
    ConfigError,
    DayNote,
    Department,
    Duty,
    DutyHours,
    Member,
    Point,
    PointConfig,
    Sms,
    Targets,
    normalize_phone,
    parse_duration,
    takes_texts,
)
from hotline.service.duty import Schedule

_HOURS = re.compile(r"^(daily|workdays)\s+(\d{2}:\d{2})\s*-\s*(\d{2}:\d{2})\Z")

T = TypeVar("T")


class _Checker:
    """Walks the parsed TOML, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def table(self, data: dict[str, Any], key: str, allowed: set[str], path: str) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            self.problem(path, "missing table")
            return {}
        if not isinstance(value, dict):
            self.problem(path, "must be a table")
            return {}
        self.unknown_keys(value, allowed, path)
        return value

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], path: str) -> None:
        for key in sorted(set(table) - allowed):
            self.problem(f"{path}.{key}", "unknown key")

    def value(
        self,
        table: dict[str, Any],
        key: str,
        path: str,
        kind: type[T],
        convert: Callable[[T], Any] | None = None,
        *,
        required: bool = True,
        default: Any = None,
    ) -> Any:
        where = f"{path}.{key}"
        if key not in table:
            if required:
                self.problem(where, "missing")
            return default
        raw = table[key]
        if kind is str and isinstance(raw, (date, time)):  # TOML's own date: start = 2026-11-23
            self.problem(where, f'must be a string: in quotes, "{raw.isoformat()}"')
            return default
        if not isinstance(raw, kind) or isinstance(raw, bool) is not (kind is bool):
            self.problem(where, f"must be a {_KIND_NAMES.get(kind, kind.__name__)}")
            return default
        if isinstance(raw, str) and not raw.strip():
            self.problem(where, "must not be empty")
            return default
        if convert is None:
            return raw
        try:
            return convert(raw)
        except ValueError as exc:
            self.problem(where, str(exc))
            return default

    def string_list(self, table: dict[str, Any], key: str, path: str) -> list[str]:
        raw = table.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(x, str) and x.strip() for x in raw):
            self.problem(f"{path}.{key}", "must be a list of non-empty strings")
            return []
        return [x.strip() for x in raw]

    def records(self, data: dict[str, Any], key: str) -> list[dict[str, Any]]:
        raw = data.get(key, [])
        if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
            self.problem(key, "must be an array of tables ([[" + key + "]])")
            return []
        return raw


_KIND_NAMES = {str: "string", int: "whole number", dict: "table", list: "list", bool: "boolean"}


def _identifier(text: str) -> str:
    if not ID_PATTERN.match(text):
        raise ValueError(f"{text!r} must be lowercase letters, digits, '-' or '_' (at most 32)")
    return text


def _timezone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{text!r} is not a known time zone such as Asia/Shanghai") from exc


def _language(text: str) -> str:
    if text not in LANGUAGES:
        raise ValueError(f"{text!r} is not one of {', '.join(LANGUAGES)}")
    return text


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date such as 2026-11-23") from exc


def _clock_time(text: str) -> time:
    if not re.match(r"^\d{2}:\d{2}$", text):
        raise ValueError(f"{text!r} is not a time of day such as 08:30")
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a time of day such as 08:30") from exc


def _period(text: str) -> timedelta:
    period = parse_duration(text)
    if period < timedelta(hours=1) or period % timedelta(hours=1):
        raise ValueError(f"{text!r}: a shift is a whole number of hours or days, such as 12h or 1d")
    return period


def _hours(text: str) -> DutyHours | None:
    if text.strip() == "24x7":
        return None
    match = _HOURS.match(text.strip())
    if not match:
        raise ValueError(
            f"{text!r} is not 24x7 or like 'workdays 08:30-17:30' / 'daily 08:00-20:00'"
        )
    start, end = _clock_time(match.group(2)), _clock_time(match.group(3))
    if end <= start:
        raise ValueError(f"{text!r}: duty hours must end after they start on the same day")
    return DutyHours(match.group(1), start, end)


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def check(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return check


def _check_point(c: _Checker, data: dict[str, Any]) -> Point | None:
    allowed = {"id", "name", "timezone", "language", "sms_numbers"}
    table = c.table(data, "point", allowed, "point")
    numbers = []
    for i, raw in enumerate(c.string_list(table, "sms_numbers", "point")):
        try:
            numbers.append(normalize_phone(raw))
        except ValueError as exc:
            c.problem(f"point.sms_numbers[{i}]", str(exc))
    values = (
        c.value(table, "id", "point", str, _identifier),
        c.value(table, "name", "point", str, str.strip),
        c.value(table, "timezone", "point", str, _timezone),
        c.value(table, "language", "point", str, _language, required=False, default="zh-CN"),
    )
    if any(v is None for v in values):
        return None
    return Point(*values, sms_numbers=tuple(numbers))


def _check_duty(c: _Checker, data: dict[str, Any], member_ids: set[str]) -> Duty | None:
    allowed = {
        "rotation", "start", "handoff", "period", "standing_head", "ack_within", "holidays",
        "hours", "outside_hours", "remind_every", "holiday", "workday",
    }  # fmt: skip
    table = c.table(data, "duty", allowed, "duty")
    if not table:
        return None
    rotation = c.string_list(table, "rotation", "duty")
    if "rotation" in table and not rotation:
        c.problem("duty.rotation", "must name at least one member")
    elif "rotation" not in table:
        c.problem("duty.rotation", "missing")
    seen: set[str] = set()
    for i, member_id in enumerate(rotation):
        if member_id not in member_ids:
            c.problem(f"duty.rotation[{i}]", f"unknown member {member_id!r}")
        if member_id in seen:
            c.problem(f"duty.rotation[{i}]", f"member {member_id!r} is in the rotation twice")
        seen.add(member_id)
    start = c.value(table, "start", "duty", str, _date)
    handoff = c.value(
        table, "handoff", "duty", str, _clock_time, required=False, default=time(8, 30)
    )
    period = c.value(
        table, "period", "duty", str, _period, required=False, default=timedelta(days=1)
    )
    head = c.value(table, "standing_head", "duty", str)
    if head is not None and head not in member_ids:
        c.problem("duty.standing_head", f"unknown member {head!r}")
        head = None
    ack = c.value(table, "ack_within", "duty", str, parse_duration, required=False)
    holidays = c.value(table, "holidays", "duty", str, _choice(HOLIDAY_CALENDARS), required=False)
    hours = c.value(table, "hours", "duty", str, _hours, required=False)
    remind = c.value(table, "remind_every", "duty", str, parse_duration, required=False)
    outside = c.value(
        table, "outside_hours", "duty", str, _choice(OUTSIDE_HOURS), required=False, default="hold"
    )
    days = _check_days(c, table)
    if not rotation or None in (start, handoff, period, head):
        return None
    duty = Duty(
        rotation=tuple(rotation),
        start=start,
        handoff=handoff,
        period=period,
        standing_head=head,
        ack_within=ack or timedelta(minutes=30),
        holidays=holidays,
        hours=hours,
        outside_hours=outside or "hold",
        remind_every=remind or timedelta(minutes=30),
        days=days,
    )
    if (run := longest_off(duty)) is not None and run[1] - run[0] >= MOST_DAYS_OFF:
        first, last = run[0], run[1] - timedelta(days=1)
        c.problem(
            "duty.holiday",
            f"no duty hours from {first} to {last} ({(run[1] - run[0]).days} days): handling"
            f" must resume within {MOST_DAYS_OFF.days} days",
        )
    return duty


# Duty hours resume within this many days (Spring Festival with its weekends is about ten):
# the hotline tells every text when handling resumes, and looks no further.
MOST_DAYS_OFF = timedelta(days=45)
_YEAR = timedelta(days=366)  # a run looked at no further


def longest_off(duty: Duty) -> tuple[date, date] | None:
    """The longest run of days without duty hours around the point's own holidays: (its
    first day, the day after its last); None when duty hours do not skip days."""
    if duty.hours is None or duty.hours.days == "daily":
        return None
    schedule = Schedule(duty, ZoneInfo("UTC"))  # days alone: no time zone matters
    longest: tuple[date, date] | None = None
    for note in duty.days:
        if not note.off or (longest and longest[0] <= note.day < longest[1]):
            continue
        first = last = note.day
        while not schedule.is_workday(first - timedelta(days=1)) and last - first < _YEAR:
            first -= timedelta(days=1)
        while not schedule.is_workday(last) and last - first < _YEAR:
            last += timedelta(days=1)
        if longest is None or last - first > longest[1] - longest[0]:
            longest = (first, last)
    return longest


DAYS_AT_ONCE = 31  # a holiday of more days is a typo


def _check_days(c: _Checker, duty: dict[str, Any]) -> tuple[DayNote, ...]:
    """[[duty.holiday]] and [[duty.workday]]: `date` (and `until`, for several days) and
    `name`. The point's own word on days off and make-up workdays, winning over the
    holiday package; a day set twice is a problem."""
    found: dict[date, DayNote] = {}
    for key, off in (("holiday", True), ("workday", False)):
        for i, table in enumerate(c.records(duty, key)):
            path = f"duty.{key}[{i}]"
            c.unknown_keys(table, {"date", "until", "name"}, path)
            first = c.value(table, "date", path, str, _date)
            last = c.value(table, "until", path, str, _date, required=False, default=first)
            name = c.value(table, "name", path, str, str.strip)
            if first is None or last is None or name is None:
                continue
            if len(name) > 40:
                c.problem(f"{path}.name", "at most 40 characters")
            if not 0 <= (last - first).days < DAYS_AT_ONCE:
                c.problem(f"{path}.until", f"must be on or after date, within {DAYS_AT_ONCE} days")
                continue
            for n in range((last - first).days + 1):
                day = first + timedelta(days=n)
                if day in found:
                    c.problem(path, f"{day} is set twice ({found[day].name}, {name})")
                found[day] = DayNote(day, off, name)
    return tuple(sorted(found.values(), key=lambda note: note.day))


def _check_members(c: _Checker, data: dict[str, Any], hotline: Sequence[str]) -> list[Member]:
    """The members; `hotline` the point's own numbers (no member's: texts would loop)."""
    members: list[Member] = []
    ids: set[str] = set()
    paired: dict[str, str] = {}
    for i, table in enumerate(c.records(data, "members")):
        path = f"members[{i}]"
        c.unknown_keys(table, {"id", "name", "phone", "role", "companies"}, path)
        member_id = c.value(table, "id", path, str, _identifier)
        if member_id in ids:
            c.problem(f"{path}.id", f"duplicate member id {member_id!r}")
        name = c.value(table, "name", path, str, str.strip)
        phone = c.value(table, "phone", path, str, normalize_phone, required=False)
        if phone is not None and phone in hotline:  # texts to it would come back as requests
            c.problem(f"{path}.phone", f"{phone} is the hotline's own number")
        role = c.value(table, "role", path, str, _choice(ROLES), required=False, default="rep")
        companies = c.string_list(table, "companies", path)
        for j, company in enumerate(companies):
            if company in paired:
                c.problem(
                    f"{path}.companies[{j}]",
                    f"{company!r} is already paired with {paired[company]!r}",
                )
            paired.setdefault(company, member_id or "?")
        if member_id and name and role and member_id not in ids:
            members.append(Member(member_id, name, phone, role, tuple(companies)))
        if member_id:
            ids.add(member_id)
    if not members and not c.problems:
        c.problem("members", "at least one member is needed")
    return members


def _check_departments(c: _Checker, data: dict[str, Any]) -> list[Department]:
    departments: list[Department] = []
    ids: set[str] = set()
    for i, table in enumerate(c.records(data, "departments")):
        path = f"departments[{i}]"
        c.unknown_keys(table, {"id", "name"}, path)
        dept_id = c.value(table, "id", path, str, _identifier)
        name = c.value(table, "name", path, str, str.strip)
        if dept_id in ids:
            c.problem(f"{path}.id", f"duplicate department id {dept_id!r}")
        elif dept_id and name:
            departments.append(Department(dept_id, name))
        if dept_id:
            ids.add(dept_id)
    return departments


def _category_names(value: dict[str, Any]) -> dict[str, str]:
    names = {}
    for lang in ("zh", "en"):
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"needs a non-empty {lang!r} name, e.g. {{ zh = ..., en = ... }}")
        names[lang] = text.strip()
    extra = set(value) - {"zh", "en"}
    if extra:
        raise ValueError(f"unknown language(s) {', '.join(sorted(extra))}: use zh and en")
    return names


def _check_categories(c: _Checker, data: dict[str, Any], dept_ids: set[str]) -> list[Category]:
    categories: list[Category] = []
    codes: set[str] = set()
    for i, table in enumerate(c.records(data, "categories")):
        path = f"categories[{i}]"
        c.unknown_keys(
            table, {"code", "name", "department", "respond_within", "resolve_within"}, path
        )
        code = c.value(table, "code", path, str, _identifier)
        names = c.value(table, "name", path, dict, _category_names)
        dept = c.value(table, "department", path, str, required=False)
        respond = c.value(table, "respond_within", path, str, parse_duration, required=False)
        resolve = c.value(table, "resolve_within", path, str, parse_duration, required=False)
        if dept is not None and dept not in dept_ids:
            c.problem(f"{path}.department", f"unknown department {dept!r}")
        if code in codes:
            c.problem(f"{path}.code", f"duplicate category code {code!r}")
        elif code and names:
            categories.append(Category(code, names, dept, respond, resolve))
        if code:
            codes.add(code)
    return categories


def _check_sms(c: _Checker, data: dict[str, Any]) -> Sms:
    if "sms" not in data:
        return Sms()
    table = c.table(data, "sms", {"thread_within"}, "sms")
    within = c.value(table, "thread_within", "sms", str, parse_duration, required=False)
    return Sms(thread_within=within) if within else Sms()


def _check_targets(c: _Checker, data: dict[str, Any]) -> Targets:
    if "cases" not in data:
        return Targets()
    names = ("respond_within", "resolve_within", "rating_wait")
    table = c.table(data, "cases", set(names), "cases")
    found = {n: c.value(table, n, "cases", str, parse_duration, required=False) for n in names}
    return Targets(**{n: v for n, v in found.items() if v is not None})


def parse_config(data: dict[str, Any], source: str = "config") -> PointConfig:
    """Build a PointConfig from parsed TOML, or raise ConfigError listing every problem."""
    c = _Checker()
    tables = {"point", "duty", "members", "departments", "categories", "sms", "cases"}
    c.unknown_keys(data, tables, "(top level)")
    point = _check_point(c, data)
    members = _check_members(c, data, point.sms_numbers if point else ())
    # Rotation checks need every id the file declares, even of members with other problems.
    listed = data.get("members", [])  # not a list, an id not a string: named above
    entries = listed if isinstance(listed, list) else []
    declared = {t["id"] for t in entries if isinstance(t, dict) and isinstance(t.get("id"), str)}
    duty = _check_duty(c, data, declared)
    departments = _check_departments(c, data)
    categories = _check_categories(c, data, {d.id for d in departments})
    sms = _check_sms(c, data)
    targets = _check_targets(c, data)
    if c.problems or point is None or duty is None:
        raise ConfigError(source, c.problems or ["incomplete config"])
    return PointConfig(
        point, duty, tuple(members), tuple(departments), tuple(categories), sms, targets
    )


def config_warnings(config: PointConfig) -> list[str]:
    """What a config allows but a point should look at: members texts cannot reach (no
    phone on duty, a landline), a phone two members share."""
    warnings = []
    on_duty = {*config.duty.rotation, config.duty.standing_head}
    seen: dict[str, str] = {}
    for member in config.members:
        if member.phone is None:
            if member.id in on_duty:
                warnings.append(
                    f"member {member.id!r} is on duty but has no phone: texts cannot reach them"
                )
            continue
        if not takes_texts(member.phone):
            warnings.append(f"member {member.id!r}: {member.phone} cannot take texts (a landline?)")
        if member.phone in seen:
            warnings.append(
                f"members {seen[member.phone]!r} and {member.id!r} share {member.phone}"
            )
        seen.setdefault(member.phone, member.id)
    return warnings


CONFIG_MAX = 1024 * 1024  # a point's config is a few kB; a bigger file is not one


def read_config_data(path: Path) -> dict[str, Any]:
    """The parsed TOML of a point config file, not yet checked."""
    try:
        if not path.is_file():  # a folder, a device (/dev/zero), a pipe: never read
            raise ConfigError(str(path), ["not a file" if path.exists() else "no such file"])
        if path.stat().st_size > CONFIG_MAX:
            raise ConfigError(str(path), [f"larger than {CONFIG_MAX // 1024} KiB: not a config"])
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), ["the file is not UTF-8 text"]) from exc
    try:
        return tomllib.loads(text.removeprefix("\ufeff"))  # a byte order mark (Windows editors)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"not valid TOML: {exc}"]) from exc
    except RecursionError:
        raise ConfigError(str(path), ["not valid TOML: nested too deeply"]) from None


def load_config(path: Path) -> PointConfig:
    """Read and check a point config file."""
    return parse_config(read_config_data(path), str(path))
