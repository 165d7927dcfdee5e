"""Who a new case goes to: pure decisions over the config and the duty schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.duty import Schedule

SAFETY = "safety"  # 除险保安: the standing head hears at once
HELD = "held-for-next-shift"  # outside duty hours, for the member of the next shift
# A paired company's name shorter than this is not looked for in a request's words (it would
# be found where it is not meant): only in the company field, whole.
NAMED_MIN = 4


@dataclass(frozen=True)
class Assignment:
    member_id: str
    reason: str  # "on-duty", "paired", "held-for-next-shift" or "outside-hours"
    due: datetime | None = None  # when handling starts, for a request held for the next shift
    copy: tuple[str, ...] = ()  # members told about the case as well


def _norm(company: str | None) -> str:
    return "".join((company or "").split()).casefold()


class RoutingPolicy:
    """Routing for one config and schedule; cheap to build, pure to call."""

    def __init__(self, config: PointConfig, schedule: Schedule | None = None) -> None:
        self.config = config
        self.schedule = schedule or Schedule(config.duty, config.point.timezone)
        self._paired = {
            _norm(company): member.id for member in config.members for company in member.companies
        }
        # Longest first: of two names found, the longer one is meant ("...有限公司二厂").
        self._named = sorted(
            (n for n in self._paired if len(n) >= NAMED_MIN), key=len, reverse=True
        )

    def _on_duty(self, at: datetime) -> Assignment:
        member = self.schedule.on_duty(at)
        if member is not None:
            return Assignment(member, "on-duty")
        if self.config.duty.outside_hours == "standing-head":
            return Assignment(self.config.duty.standing_head, "outside-hours")
        resume, member = self.schedule.next_on_duty(at)
        return Assignment(member, HELD, due=resume)

    def paired_with(self, intake: Intake) -> str | None:
        """The member paired with the request's company (包保): the company field as a
        paired name, or a paired name within it ("...有限公司（二厂）"); with no company
        given (a text has no such field), a paired name within the request's words. (A
        company given that is none of them is the submitter's: a paired one its words
        name is another's, complained about perhaps.)"""
        company = _norm(intake.company)
        if company in self._paired:
            return self._paired[company]
        words = company or _norm(intake.text)
        return next((self._paired[name] for name in self._named if name in words), None)

    def assign(self, intake: Intake) -> Assignment:
        """In order: a company paired with a member (包保), named in the request, goes to that
        member, the member on duty copied; otherwise to the member on duty at receipt
        (outside duty hours, held for the next duty hours or the standing head). Safety and
        urgent requests also go to the standing head at once."""
        at = intake.received_at
        duty = self._on_duty(at)
        paired = self.paired_with(intake)
        if paired and not self.schedule.away(paired, at):
            # The member on duty copied; outside duty hours (held), nobody off duty is: the
            # next shift's summary counts the request.
            copied = () if duty.reason == HELD else (duty.member_id,)
            # Outside duty hours it waits for them as a held request does: its clocks and
            # escalation start when duty hours do (not every half hour of a weekend night).
            resume = duty.due if duty.reason == HELD else None
            assignment = Assignment(paired, "paired", due=resume, copy=copied)
        else:
            assignment = duty
        copy = list(assignment.copy)
        if intake.category == SAFETY or intake.urgent:
            copy.append(self.config.duty.standing_head)
        wanted = tuple(dict.fromkeys(m for m in copy if m != assignment.member_id))
        return Assignment(assignment.member_id, assignment.reason, assignment.due, wanted)

    def handling_resumes(self, at: datetime) -> datetime | None:
        """None while someone is handling requests; else when handling starts again."""
        if self.schedule.in_hours(at) or self.config.duty.outside_hours == "standing-head":
            return None
        return self.schedule.resumes_at(at)
