"""Report periods: ranges of local dates (the point's timezone, both ends included), the
presets the console offers, and the months of the monthly summary."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hotline.service.cases import to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, Refusal

PRESETS = {
    "this-week": N_("This week"),
    "this-month": N_("This month"),
    "last-month": N_("Last month"),
    "this-quarter": N_("This quarter"),
    "this-year": N_("This year"),
}
LONGEST_YEARS = 5  # a report covers at most five years
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class BadPeriod(Refusal):
    """A period the reports cannot take: `field` is from, to or month."""


@dataclass(frozen=True)
class Period:
    first: date
    last: date  # included

    def bounds(self, tz: ZoneInfo) -> tuple[str, str]:
        """[since, until) in UTC text: from local midnight of the first day to local
        midnight after the last (a case at 23:59:59 on the last day is in)."""
        since = datetime.combine(self.first, time(), tzinfo=tz)
        until = datetime.combine(self.last + timedelta(days=1), time(), tzinfo=tz)
        return to_utc_text(since), to_utc_text(until)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def query(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def preset(name: str, today: date) -> Period:
    """A named period around `today` (a local date)."""
    if name == "this-week":
        monday = today - timedelta(days=today.weekday())
        return Period(monday, monday + timedelta(days=6))
    if name == "this-month":
        return month(today.year, today.month)
    if name == "last-month":
        first = today.replace(day=1) - timedelta(days=1)
        return month(first.year, first.month)
    if name == "this-quarter":
        start = 3 * ((today.month - 1) // 3) + 1
        end = month(today.year, start + 2)
        return Period(date(today.year, start, 1), end.last)
    if name == "this-year":
        return Period(date(today.year, 1, 1), date(today.year, 12, 31))
    raise BadPeriod("period", N_("not one of the periods offered"))


def _years_after(day: date, years: int) -> date:
    """The same date `years` on (29 February: 1 March when that year has none)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def month(year: int, number: int) -> Period:
    return Period(date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1]))


def parse_month(text: str) -> Period:
    """`YYYY-MM` (ASCII digits) -> that month; BadPeriod naming `month` otherwise."""
    try:
        if not _MONTH.fullmatch(text):
            raise ValueError(text)
        year, number = (int(part) for part in text.split("-"))
        if not 1900 <= year <= 9000:
            raise ValueError(text)
        return month(year, number)
    except ValueError:
        raise BadPeriod("month", N_("not a month such as 2026-11")) from None


def month_before(period: Period) -> Period:
    """The calendar month before the one `period` begins in."""
    last = period.first.replace(day=1) - timedelta(days=1)
    return month(last.year, last.month)


def _day(name: str, text: str) -> date:
    try:
        if not _DAY.fullmatch(text):  # not 2026-W48-1 or 20261201, which fromisoformat takes
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise BadPeriod(name, N_("not a date such as 2026-11-01")) from None
    if not 1900 <= day.year <= 9000:
        raise BadPeriod(name, N_("a date in the years 1900 to 9000"))
    return day


def parse_period(first: str, last: str, name: str, today: date) -> Period:
    """The period a request asks for: `from` and `to` (dates), or a preset by name, or this
    month. BadPeriod names the field at fault."""
    if not first and not last:
        return preset(name or "this-month", today)
    if not first or not last:
        missing = "from" if not first else "to"
        raise BadPeriod(missing, N_("a period needs both its first and its last day"))
    period = Period(_day("from", first), _day("to", last))
    if period.last < period.first:
        raise BadPeriod("to", N_("the last day comes before the first"))
    if period.last >= _years_after(period.first, LONGEST_YEARS):
        raise BadPeriod("to", N_("a report covers at most five years"))
    return period


def received_between(first: str, last: str, tz: ZoneInfo) -> tuple[str, str]:
    """A case list's `from` and `to` (local dates, both included; either may be left out,
    and any length of time is fine: a list is not a report): [since, until) in UTC text.
    BadPeriod names the field at fault."""
    start = _day("from", first) if first else None
    end = _day("to", last) if last else None
    if start is not None and end is not None and end < start:
        raise BadPeriod("to", N_("the last day comes before the first"))
    since, _ = Period(start, start).bounds(tz) if start else ("", "")
    _, until = Period(end, end).bounds(tz) if end else ("", "9999")
    return since, until


def today_in(config: PointConfig, now: datetime) -> date:
    return now.astimezone(config.point.timezone).date()


def as_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
