"""The duty schedule as pure functions: who is on duty at an instant, and when next."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import chinese_calendar

from hotline.service.config import Duty

log = logging.getLogger(__name__)

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Shift:
    member_id: str
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC, exclusive


class Rotation:
    """The plain rotation: members in order, shifts of `period` from `start` at `handoff`.

    Shifts that are whole days follow the local wall clock (a handoff stays at 08:30 across a
    daylight-saving change); shorter ones are a fixed number of hours from the first handoff.
    Before `start` the rotation runs backwards, so every instant has someone on duty.
    """

    def __init__(self, duty: Duty, tz: ZoneInfo) -> None:
        self.members = duty.rotation
        self.tz = tz
        self.period = duty.period
        self.handoff = duty.handoff
        self.start = duty.start
        self.by_days = duty.period % _DAY == timedelta(0)
        # In UTC: shorter shifts count real hours (across a daylight-saving change too).
        self.origin = datetime.combine(duty.start, duty.handoff, tzinfo=tz).astimezone(UTC)

    def _handoff_on(self, day: date) -> datetime:
        """The instant of a day's handoff (in the hour a clock repeats, its first pass; in
        one it skips, as if the clock had not moved yet)."""
        return datetime.combine(day, self.handoff, tzinfo=self.tz).astimezone(UTC)

    def _index(self, at: datetime) -> int:
        if at.tzinfo is None:
            raise ValueError("on_duty needs an aware datetime")
        at = at.astimezone(UTC)  # instants compared, never wall clocks (a repeated hour)
        if self.by_days:
            day = at.astimezone(self.tz).date()
            duty_date = day if at >= self._handoff_on(day) else day - _DAY
            return (duty_date - self.start).days // self.period.days
        return (at - self.origin) // self.period

    def _shift_start(self, index: int) -> datetime:
        """When shift `index` begins: the rule `_index` counts by, so that each instant is in
        the one shift that holds it."""
        if self.by_days:
            return self._handoff_on(self.start + index * self.period)
        return self.origin + index * self.period

    def shift_at(self, at: datetime) -> Shift:
        index = self._index(at)
        return Shift(
            self.members[index % len(self.members)],
            self._shift_start(index),
            self._shift_start(index + 1),
        )

    def on_duty(self, at: datetime) -> str:
        return self.shift_at(at).member_id


# The last day the holiday package has China's calendar for (its data ends with the year
# it was released for).
PACKAGE_KNOWS_UNTIL = date(max(chinese_calendar.constants.holidays).year, 12, 31)
CALENDAR_WARNING = timedelta(days=60)  # warn this long before the known calendar ends


def calendar_ends(duty: Duty) -> date | None:
    """Until when the point's workdays are known: the package's last year, or the last year
    whose New Year's Day (元旦, a day off every year) the point's own [[duty.holiday]] name:
    the sign that the point entered that year's schedule, not one day of its own; None with
    no holiday calendar (workdays are Monday to Friday, plus what the config says)."""
    if duty.holidays != "cn":
        return None
    years = [n.day.year for n in duty.days if n.off and (n.day.month, n.day.day) == (1, 1)]
    return max(PACKAGE_KNOWS_UNTIL, date(max(years), 12, 31)) if years else PACKAGE_KNOWS_UNTIL


def calendar_warning(duty: Duty, today: date) -> date | None:
    """The day the known holiday calendar ends, if that is within CALENDAR_WARNING."""
    ends = calendar_ends(duty)
    return ends if ends is not None and today >= ends - CALENDAR_WARNING else None


def package_day_off(day: date) -> str | None:
    """The package's holiday name for a day off (in Chinese), if it knows the day."""
    try:
        _, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    for holiday in chinese_calendar.Holiday:
        if holiday.value == name:
            return str(holiday.chinese)
    return str(name) if name else None


@cache
def _cn_workday(day: date) -> bool:
    """China's official workdays: holidays off, make-up workdays (调休) on."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # The package's data ends with the year it was released for: keep it up to date.
        log.warning("no China holiday data for %d; counting Monday-Friday", day.year)
        return day.weekday() < 5


@dataclass(frozen=True)
class Cover:
    """An override: `member` is on duty over [start, end) instead of the rotation. A swap is
    two covers sharing a `swap` id."""

    member: str
    start: datetime
    end: datetime
    id: int | None = None
    swap: int | None = None


@dataclass(frozen=True)
class Away:
    """`member` is unavailable over [start, end) (leave, sickness): routing skips them."""

    member: str
    start: datetime
    end: datetime
    id: int | None = None


@dataclass(frozen=True)
class Segment:
    member_id: str
    start: datetime
    end: datetime
    source: str  # "rotation", "override" or "standing-in" (covering for someone away)


class Schedule:
    """The rotation within duty hours, with overrides and unavailability. With no duty hours
    someone is on duty at every instant; with them, `on_duty` is None outside."""

    def __init__(
        self,
        duty: Duty,
        tz: ZoneInfo,
        covers: tuple[Cover, ...] = (),
        aways: tuple[Away, ...] = (),
    ) -> None:
        self.rotation = Rotation(duty, tz)
        self.hours = duty.hours
        self.holidays = duty.holidays
        self.days = {note.day: note for note in duty.days}
        self.standing_head = duty.standing_head
        self.tz = tz
        self.covers = covers
        self.aways = aways

    def is_workday(self, day: date) -> bool:
        note = self.days.get(day)  # the point's own word wins
        if note is not None:
            return not note.off
        return _cn_workday(day) if self.holidays == "cn" else day.weekday() < 5

    def day_note(self, day: date) -> tuple[str, str, str] | None:
        """Why a day is off or a make-up workday: (kind, name, source), kind "off" or
        "workday", source "point" (the config), "package" (China's calendar) or "weekend";
        None for an ordinary workday."""
        note = self.days.get(day)
        if note is not None:
            return ("off" if note.off else "workday", note.name, "point")
        workday = self.is_workday(day)
        if self.holidays == "cn" and day <= PACKAGE_KNOWS_UNTIL:
            name = package_day_off(day)
            if name and not workday:
                return ("off", name, "package")
            if workday and day.weekday() >= 5:
                return ("workday", name or "", "package")  # 调休上班
        if not workday:
            return ("off", "", "weekend")
        return None

    def _duty_day(self, day: date) -> bool:
        return self.hours is None or self.hours.days == "daily" or self.is_workday(day)

    def in_hours(self, at: datetime) -> bool:
        if self.hours is None:
            return True
        local = at.astimezone(self.tz)
        return self._duty_day(local.date()) and self.hours.start <= local.time() < self.hours.end

    def away(self, member: str, at: datetime) -> bool:
        return any(a.member == member and a.start <= at < a.end for a in self.aways)

    def who(self, at: datetime) -> tuple[str, str] | None:
        """(member, source) on duty at `at`, or None outside duty hours."""
        if not self.in_hours(at):
            return None
        cover = next((c for c in self.covers if c.start <= at < c.end), None)
        member, source = (
            (cover.member, "override") if cover else (self.rotation.on_duty(at), "rotation")
        )
        if not self.away(member, at):
            return member, source
        # Skip to the next member of the rotation who is here, else the standing head.
        order = self.rotation.members
        start = order.index(member) if member in order else -1
        for step in range(1, len(order) + 1):
            candidate = order[(start + step) % len(order)]
            if not self.away(candidate, at):
                return candidate, "standing-in"
        return self.standing_head, "standing-in"

    def on_duty(self, at: datetime) -> str | None:
        found = self.who(at)
        return found[0] if found else None

    def resumes_at(self, at: datetime) -> datetime:
        """`at` itself within duty hours, else the start of the next duty hours (UTC)."""
        if self.hours is None or self.in_hours(at):
            return at
        day = at.astimezone(self.tz).date()
        # The config allows at most MOST_DAYS_OFF (45) without duty hours; the console's
        # changes cannot add holidays. Past a year, handle it now rather than never.
        for _ in range(366):
            # Instants compared, not wall clocks; a start the clocks skip that day (duty
            # hours within the missing hour) is no start.
            start = datetime.combine(day, self.hours.start, tzinfo=self.tz).astimezone(UTC)
            if self._duty_day(day) and start >= at and self.in_hours(start):
                return start
            day += timedelta(days=1)
        log.error("no duty hours within a year of %s: handled as within them", at)
        return at

    def next_on_duty(self, at: datetime) -> tuple[datetime, str]:
        """When handling resumes at or after `at`, and the member on duty then."""
        resume = self.resumes_at(at)
        member = self.on_duty(resume)
        assert member is not None
        return resume, member

    def _boundaries(self, start: datetime, end: datetime) -> list[datetime]:
        points = {start, end}
        shift = self.rotation.shift_at(start)
        while shift.start < end:
            points.update((shift.start, shift.end))
            following = self.rotation.shift_at(shift.end)
            if following.start <= shift.start:  # never looped on: a hang stops everything
                raise RuntimeError(f"the rotation does not move on after {shift}")
            shift = following
        if self.hours is not None:
            day = start.astimezone(self.tz).date() - timedelta(days=1)
            while datetime.combine(day, time.min, tzinfo=self.tz) < end:
                for moment in (self.hours.start, self.hours.end):
                    points.add(datetime.combine(day, moment, tzinfo=self.tz).astimezone(UTC))
                day += timedelta(days=1)
        for cover in self.covers:
            points.update((cover.start, cover.end))
        for away in self.aways:
            points.update((away.start, away.end))
        return sorted(p for p in points if start <= p <= end)

    def shifts(self, start: datetime, end: datetime) -> list[Segment]:
        """Who is on duty over [start, end), as segments (merged where nothing changes)."""
        segments: list[Segment] = []
        points = self._boundaries(start.astimezone(UTC), end.astimezone(UTC))
        for a, b in itertools.pairwise(points):
            if a >= b:
                continue
            found = self.who(a)
            if found is None:
                continue
            member, source = found
            last = segments[-1] if segments else None
            if last and last.end == a and last.member_id == member and last.source == source:
                segments[-1] = Segment(member, last.start, b, source)
            else:
                segments.append(Segment(member, a, b, source))
        return segments
