"""Time-driven steps: escalating unacknowledged cases and handing off at shift changes.

Run from every worker on a timer. Each step is a write conditional on the state it read
(SQLite), and each text goes through the outbox under a purpose key, so with two workers
every step still happens exactly once; the state lives in SQLite, so restarts lose nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import aiosqlite

from hotline.service.cases import to_utc_text
from hotline.service.config import PointConfig
from hotline.service.dutybook import DutyBook
from hotline.service.notify import Notifier
from hotline.service.ports import Signals
from hotline.service.queues import clocks
from hotline.service.store import Case, Store
from hotline.service.text import N_, translate

UNACKNOWLEDGED = ("assigned", "reopened")
NEAR = timedelta(hours=2)  # "near its deadline" in a handoff summary


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

    async def _cases(self, where: str, params: tuple[object, ...]) -> list[Case]:
        return await self.store.cases_where(where, params)

    async def escalate(self, now: datetime) -> int:
        """Escalate each case not acknowledged within ack_within to the standing head, and
        repeat every remind_every until someone acknowledges it."""
        config = self.config()
        head = config.duty.standing_head
        done = 0
        for case in await self._cases("c.status IN ('assigned', 'reopened')", ()):
            step = escalation_step(case, config, now)
            if step <= case.escalations:
                continue

            async def write(db: aiosqlite.Connection, case: Case = case, step: int = step) -> bool:
                cur = await db.execute(
                    "UPDATE cases SET escalations = ?, escalated_at = ?"
                    " WHERE id = ? AND escalations = ? AND status = ?",
                    (step, to_utc_text(now), case.id, case.escalations, case.status),
                )
                if cur.rowcount != 1:
                    return False  # another worker did it, or the case moved on
                await db.execute(
                    "INSERT INTO events (case_id, at, kind, status, actor, detail)"
                    " VALUES (?, ?, 'escalated', ?, NULL, ?)",
                    (
                        case.id,
                        to_utc_text(now),
                        case.status,
                        json.dumps({"to": head, "step": step}),
                    ),
                )
                return True

            if await self.store.write(write):
                await self.notifier.escalated(case, head, step)
                await self.signals.case_changed(case.code, "escalated")
                done += 1
        return done

    async def _claim(self, name: str, old: str | None, new: str) -> bool:
        """Move a scheduler mark from `old` to `new`; True for the one worker that did."""

        async def write(db: aiosqlite.Connection) -> bool:
            if old is None:
                cur = await db.execute(
                    "INSERT INTO scheduler_state (name, value) VALUES (?, ?)"
                    " ON CONFLICT (name) DO NOTHING",
                    (name, new),
                )
            else:
                cur = await db.execute(
                    "UPDATE scheduler_state SET value = ? WHERE name = ? AND value = ?",
                    (new, name, old),
                )
            return cur.rowcount == 1

        return await self.store.write(write)

    async def hand_off(self, now: datetime) -> int:
        """At a change of the member on duty: the outgoing member's unacknowledged cases go to
        the incoming member, who gets a summary. Returns how many cases moved."""
        schedule = await self.duty.schedule(now)
        segments = schedule.shifts(now - timedelta(days=3), now + timedelta(seconds=1))
        if len(segments) < 2 or not (segments[-1].start <= now):
            return 0
        current, previous = segments[-1], segments[-2]
        rows = await self.store.fetch("SELECT value FROM scheduler_state WHERE name = 'handoff'")
        last = rows[0]["value"] if rows else None
        mark = to_utc_text(current.start)
        if last is not None and last >= mark:
            return 0
        if not await self._claim("handoff", last, mark):
            return 0
        moved = 0
        if previous.member_id != current.member_id:
            moved = await self._move(previous.member_id, current.member_id, now)
        await self._summary(current.member_id, mark, now)
        return moved

    async def _move(self, outgoing: str, incoming: str, now: datetime) -> int:
        moved = 0
        for case in await self._cases(
            "c.assignee_id = ? AND c.status IN ('assigned', 'reopened')", (outgoing,)
        ):

            async def write(db: aiosqlite.Connection, case: Case = case) -> bool:
                cur = await db.execute(
                    "UPDATE cases SET assignee_id = ?, updated_at = ?"
                    " WHERE id = ? AND assignee_id = ? AND status = ?",
                    (incoming, to_utc_text(now), case.id, outgoing, case.status),
                )
                if cur.rowcount != 1:
                    return False
                detail = json.dumps({"from": outgoing, "to": incoming})
                await db.execute(
                    "INSERT INTO events (case_id, at, kind, status, actor, detail)"
                    " VALUES (?, ?, 'handoff', ?, NULL, ?)",
                    (case.id, to_utc_text(now), case.status, detail),
                )
                return True

            if await self.store.write(write):
                moved += 1
        return moved

    async def summary(self, member_id: str, now: datetime) -> dict[str, int]:
        """Open cases of a member, and how many are near or past a deadline."""
        config = self.config()
        open_cases = await self._cases(
            "c.assignee_id = ? AND c.status IN ('assigned', 'acknowledged', 'referred',"
            " 'responded', 'reopened')",
            (member_id,),
        )
        late = near = 0
        for case in open_cases:
            c = clocks(case, config, now)
            dues = [d for d in (c.respond_due, c.resolve_due, c.referral_due) if d is not None]
            if any(d < now for d in dues):
                late += 1
            elif any(d < now + NEAR for d in dues):
                near += 1
        return {"open": len(open_cases), "near": near, "late": late}

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
