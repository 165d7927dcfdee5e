"""Time-driven steps: escalating unacknowledged cases and handing off at shift changes.

Run from every worker on a timer. Each step is a write conditional on the state it read
(in the database), and each text goes through the outbox under a purpose key, so with two workers
every step still happens exactly once; the state lives in the database, so restarts lose nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from hotline.service.cases import Case, from_utc_text, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.dutybook import DutyBook
from hotline.service.i18n import N_, translate
from hotline.service.notify import Notifier
from hotline.service.ports import Signals
from hotline.service.store import Store
from hotline.service.workflow import OPEN

UNACKNOWLEDGED = ("assigned", "reopened")
# Why the router chose a member when the duty chose them (routing.Assignment.reason): these
# cases follow the duty at a handoff. ("paired" ones stay with their member.) An older case
# whose event names no reason was routed by the duty.
BY_DUTY = frozenset({"on-duty", "held-for-next-shift", "outside-hours", None})
IN_WORK = tuple(sorted(OPEN - {"received"}))  # open and with a member
NEAR = timedelta(hours=2)  # "near its deadline" in a handoff summary
# How far back a handoff looks for the shifts since the last one (workers down that long).
HANDOFF_BACK = timedelta(days=31)


def escalation_step(case: Case, config: PointConfig, now: datetime) -> int:
    """How many escalations are due by now for an unacknowledged case (pure)."""
    start = case.waiting_since or max(case.received_at, case.held_until or case.received_at)
    first = start + config.duty.ack_within
    if now < first:
        return 0
    return 1 + int((now - first) / config.duty.remind_every)


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
        """At a change of the member on duty: the outgoing member's unacknowledged cases go to
        the incoming member, who gets a summary. Returns how many cases moved."""
        schedule = await self.duty.schedule(now)
        last = await self.store.scheduler.mark("handoff")
        # The shifts since the last handoff (workers down for days: at most HANDOFF_BACK).
        start = now - timedelta(days=3)
        if last is not None:
            start = min(start, max(from_utc_text(last), now - HANDOFF_BACK))
        segments = schedule.shifts(start, now + timedelta(seconds=1))
        if len(segments) < 2 or not (segments[-1].start <= now):
            return 0
        current, previous = segments[-1], segments[-2]
        mark = to_utc_text(current.start)
        if last is not None and last >= mark:
            return 0
        # The work first, the mark last: a worker killed in between leaves the mark where it
        # was, and the next tick (here or in another worker) hands over again. Each step is
        # done once whoever does it: cases move by a conditional write, the summary is one
        # outbox row per shift. Every member on duty since the last handoff hands on: workers
        # down across two changes of duty (A, then B, now C) hand on A's cases too.
        since = from_utc_text(last) if last is not None else previous.start
        outgoing = dict.fromkeys(s.member_id for s in segments[:-1] if s.end > since)
        moved = 0
        for member_id in outgoing:
            if member_id != current.member_id:
                moved += await self._move(member_id, current.member_id, now)
        await self._summary(current.member_id, mark, now)
        await self.store.scheduler.move("handoff", last, mark)
        return moved

    async def _move(self, outgoing: str, incoming: str, now: datetime) -> int:
        """Hand the outgoing member's untouched cases to the incoming one: those the duty
        gave them. A case paired with them (包保), given to them by a member, or escalated
        to them stays theirs."""
        waiting = await self.store.cases.with_status(UNACKNOWLEDGED, assignee=outgoing)
        how = await self.store.cases.how_assigned([case.id for case in waiting])
        moved = 0
        for case in waiting:
            kind, detail = how.get(case.id, ("assigned", {}))
            if not (kind == "handoff" or (kind == "assigned" and detail.get("reason") in BY_DUTY)):
                continue
            event_id = await self.store.cases.transition(
                case,
                {"assignee_id": incoming, "updated_at": to_utc_text(now)},
                ("handoff", case.status, None, {"from": outgoing, "to": incoming}),
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
