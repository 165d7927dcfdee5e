"""The duty schedule as pure functions: who is on duty at an instant, and when next."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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
        self.origin = datetime.combine(duty.start, duty.handoff, tzinfo=tz)

    def _index(self, at: datetime) -> int:
        if at.tzinfo is None:
            raise ValueError("on_duty needs an aware datetime")
        if self.by_days:
            local = at.astimezone(self.tz)
            duty_date = local.date() if local.time() >= self.handoff else local.date() - _DAY
            return (duty_date - self.start).days // self.period.days
        return (at - self.origin) // self.period

    def _shift_start(self, index: int) -> datetime:
        if self.by_days:
            day = self.start + index * self.period
            return datetime.combine(day, self.handoff, tzinfo=self.tz).astimezone(UTC)
        return (self.origin + index * self.period).astimezone(UTC)

    def shift_at(self, at: datetime) -> Shift:
        index = self._index(at)
        return Shift(
            self.members[index % len(self.members)],
            self._shift_start(index),
            self._shift_start(index + 1),
        )

    def on_duty(self, at: datetime) -> str:
        return self.shift_at(at).member_id


@cache
def _cn_workday(day: date) -> bool:
    """China's official workdays: holidays off, make-up workdays (调休) on."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # The package's data ends with the year it was released for: keep it up to date.
        log.warning("no China holiday data for %d; counting Monday-Friday", day.year)
        return day.weekday() < 5


class Schedule:
    """The rotation within duty hours. With no duty hours, someone is on duty at every
    instant; with them, `on_duty` is None outside, and `next_on_duty` says who and when."""

    def __init__(self, duty: Duty, tz: ZoneInfo) -> None:
        self.rotation = Rotation(duty, tz)
        self.hours = duty.hours
        self.holidays = duty.holidays
        self.tz = tz

    def is_workday(self, day: date) -> bool:
        return _cn_workday(day) if self.holidays == "cn" else day.weekday() < 5

    def _duty_day(self, day: date) -> bool:
        return self.hours is None or self.hours.days == "daily" or self.is_workday(day)

    def in_hours(self, at: datetime) -> bool:
        if self.hours is None:
            return True
        local = at.astimezone(self.tz)
        return self._duty_day(local.date()) and self.hours.start <= local.time() < self.hours.end

    def on_duty(self, at: datetime) -> str | None:
        return self.rotation.on_duty(at) if self.in_hours(at) else None

    def resumes_at(self, at: datetime) -> datetime:
        """`at` itself within duty hours, else the start of the next duty hours (UTC)."""
        if self.hours is None or self.in_hours(at):
            return at
        local = at.astimezone(self.tz)
        day = local.date()
        for _ in range(60):  # Spring Festival plus weekends is well under this
            start = datetime.combine(day, self.hours.start, tzinfo=self.tz)
            if self._duty_day(day) and start >= local:
                return start.astimezone(UTC)
            day += timedelta(days=1)
        raise RuntimeError("no duty hours in the next 60 days")

    def next_on_duty(self, at: datetime) -> tuple[datetime, str]:
        """When handling resumes at or after `at`, and the member on duty then."""
        resume = self.resumes_at(at)
        return resume, self.rotation.on_duty(resume)
