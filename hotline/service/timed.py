"""Time-driven steps: escalating unacknowledged cases and handing off at shift changes.

Run from every worker on a timer. Each step is a write conditional on the state it read
(in the database), and each text goes through the outbox under a purpose key, so with two workers
every step still happens exactly once; the state lives in the database, so restarts lose nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from hotline.service.cases import Case, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.duty import Schedule, Segment
from hotline.service.dutybook import DutyBook
from hotline.service.i18n import N_, translate
from hotline.service.notify import Notifier
from hotline.service.ports import Signals
from hotline.service.routing import HELD
from hotline.service.store import Store
from hotline.service.workflow import OPEN

UNACKNOWLEDGED = ("assigned", "reopened")
# Why the router chose a member when the duty chose them (routing.Assignment.reason): these
# cases follow the duty. ("paired" ones stay with their member, and the standing head keeps
# what came outside duty hours.) An older case whose event names no reason was routed by it.
BY_DUTY = frozenset({"on-duty", HELD, None})
IN_WORK = tuple(sorted(OPEN - {"received"}))  # open and with a member
NEAR = timedelta(hours=2)  # "near its deadline" in a handoff summary


def escalation_step(case: Case, config: PointConfig, now: datetime) -> int:
    """How many escalations are due by now for an unacknowledged case (pure)."""
    start = case.waiting_since or max(case.received_at, case.held_until or case.received_at)
    first = start + config.duty.ack_within
    if now < first:
        return 0
    return 1 + int((now - first) / config.duty.remind_every)


# How far back a handoff looks for the shift before the current one: days off can leave
# up to 45 days in a row without duty hours (MOST_DAYS_OFF), and a shift may be weeks long.
_LOOK_BACK = (timedelta(days=3), timedelta(days=15), timedelta(days=60))


def _current_and_previous(
    schedule: Schedule, now: datetime
) -> tuple[Segment, Segment | None] | None:
    """The segment of duty under way at `now` and the one before it (None when duty hours
    resume after a break longer than any look back: a summary is due all the same); None
    when the current one began before any look back (nothing changed: no summary)."""
    for back in _LOOK_BACK:
        since = now - back
        segments = schedule.shifts(since, now + timedelta(seconds=1))
        if not segments or not segments[-1].start <= now:
            return None
        if len(segments) >= 2:
            return segments[-1], segments[-2]
        if segments[-1].start > since:  # it began within the look back, after no duty
            return segments[-1], None
    return None


class TimedWork:
    def __init__(
        self,
        store: Store,
        signals: Signals,
        duty: DutyBook,
        notifier: Notifier,
        config: Callable[[], PointConfig],
    ) -> None:
        self.store = store
        self.signals = signals
        self.duty = duty
        self.notifier = notifier
        self.config = config

    async def escalate(self, now: datetime) -> int:
        """Escalate each case not acknowledged within ack_within to the standing head, and
        repeat every remind_every until someone acknowledges it."""
        config = self.config()
        head = config.duty.standing_head
        done = 0
        for case in await self.store.cases.with_status(UNACKNOWLEDGED):
            step = escalation_step(case, config, now)
            if step <= case.escalations:
                continue
            event_id = await self.store.cases.transition(
                case,
                {"escalations": step, "escalated_at": to_utc_text(now)},
                ("escalated", case.status, None, {"to": head, "step": step}),
                now,
                when={"escalations": case.escalations},
            )
            if event_id is None:
                continue  # another worker did it, or the case moved on
            await self.notifier.escalated(case, head, step)
            await self.signals.case_changed(case.code, "escalated")
            done += 1
        return done

    async def hand_off(self, now: datetime) -> int:
        """The cases the duty gave out follow the duty. While someone is on duty, every
        unacknowledged case the duty gave another member (routed to the member on duty or
        held for a shift, or handed on since) goes to them: at a change of shift, after
        workers were down across several, and when the roster changes under a shift (leave
        recorded, an override edited or removed, a held case's shift swapped). At a change
        of the member on duty the incoming member gets a summary. Returns how many moved."""
        schedule = await self.duty.schedule(now)
        found = schedule.who(now)
        if found is None:  # outside duty hours: held cases wait for the next shift
            return 0
        member_id = found[0]
        moved = await self._follow_duty(member_id, now)
        found_shifts = _current_and_previous(schedule, now)
        if found_shifts is None:
            return moved  # the same member on duty all the while: no summary is due
        current, previous = found_shifts
        mark = to_utc_text(current.start)
        last = await self.store.scheduler.mark("handoff")
        if last is not None and last >= mark:
            return moved
        # The summary once per shift (one outbox row per shift and member, whoever sends
        # it), and none when the same member goes on (an override of their own, a stand-in
        # then their own shift): the mark last, so a worker killed in between sends it again.
        if previous is None or not (
            previous.member_id == current.member_id and previous.end == current.start
        ):
            await self._summary(current.member_id, mark, now)
        await self.store.scheduler.move("handoff", last, mark)
        return moved

    async def _follow_duty(self, member_id: str, now: datetime) -> int:
        """Hand the untouched cases the duty gave others to the member on duty: those routed
        by the duty or handed on. A case paired with its member (包保), given by a member,
        escalated, or given to the standing head outside duty hours stays where it is."""
        waiting = [
            case
            for case in await self.store.cases.with_status(UNACKNOWLEDGED)
            if case.assignee_id is not None and case.assignee_id != member_id
        ]
        how = await self.store.cases.how_assigned([case.id for case in waiting])
        moved = 0
        for case in waiting:
            kind, detail = how.get(case.id, ("assigned", {}))
            if not (kind == "handoff" or (kind == "assigned" and detail.get("reason") in BY_DUTY)):
                continue
            outgoing = case.assignee_id
            event_id = await self.store.cases.transition(
                case,
                {"assignee_id": member_id, "updated_at": to_utc_text(now)},
                ("handoff", case.status, None, {"from": outgoing, "to": member_id}),
                now,
                when={"assignee_id": outgoing},
            )
            if event_id is not None:
                moved += 1
        return moved

    async def summary(self, member_id: str, now: datetime) -> dict[str, int]:
        """Open cases of a member, and how many are near or past a deadline."""
        return await self.store.cases.deadlines(IN_WORK, member_id, now, now + NEAR)

    async def _summary(self, member_id: str, mark: str, now: datetime) -> None:
        config = self.config()
        member = config.member(member_id)
        if member is None or not member.phone:
            return
        counts = await self.summary(member_id, now)
        text = translate(
            config.point.language,
            N_("Your shift begins: %(open)d open requests, %(near)d near and %(late)d past"
               " their deadline."),
        ) % counts  # fmt: skip
        await self.notifier.text_member(member_id, f"handoff:{mark}:{member_id}", text)
