"""The rotating-duty schedule as pure functions: who is on duty at an instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hotline.service.config import Duty

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
            return datetime.combine(day, self.handoff, tzinfo=self.tz).astimezone(ZoneInfo("UTC"))
        return (self.origin + index * self.period).astimezone(ZoneInfo("UTC"))

    def shift_at(self, at: datetime) -> Shift:
        index = self._index(at)
        return Shift(
            self.members[index % len(self.members)],
            self._shift_start(index),
            self._shift_start(index + 1),
        )

    def on_duty(self, at: datetime) -> str:
        return self.shift_at(at).member_id
