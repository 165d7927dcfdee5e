"""Who a new case goes to: pure decisions over the config and the duty schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.duty import Schedule


@dataclass(frozen=True)
class Assignment:
    member_id: str
    reason: str  # "on-duty", "held-for-next-shift" or "outside-hours"
    due: datetime | None = None  # when handling starts, for a request held for the next shift


class RoutingPolicy:
    """Routing policy for one config. Built once per config load; cheap to call."""

    def __init__(self, config: PointConfig) -> None:
        self.config = config
        self.schedule = Schedule(config.duty, config.point.timezone)

    def assign(self, intake: Intake) -> Assignment:
        """The member on duty when the request was received; outside duty hours, the member
        of the next duty hours (held until then) or the standing head, as configured."""
        at = intake.received_at
        member = self.schedule.on_duty(at)
        if member is not None:
            return Assignment(member, "on-duty")
        if self.config.duty.outside_hours == "standing-head":
            return Assignment(self.config.duty.standing_head, "outside-hours")
        resume, member = self.schedule.next_on_duty(at)
        return Assignment(member, "held-for-next-shift", due=resume)

    def handling_resumes(self, at: datetime) -> datetime | None:
        """None while someone is handling requests; else when handling starts again."""
        if self.schedule.in_hours(at) or self.config.duty.outside_hours == "standing-head":
            return None
        return self.schedule.resumes_at(at)
