"""Working a case: actions through the state machine, with an event for each, and the
submitter kept informed. Writes are conditional on the status the actor saw."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from hotline.service.cases import FINISHED, Case, Status, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, Refusal
from hotline.service.notify import SMS_MAX, Notifier
from hotline.service.outbox import Outbox
from hotline.service.ports import IntakeSink, Signals
from hotline.service.store import Store
from hotline.service.store.cases import OutgoingReply
from hotline.service.text import CONTROL, normalized
from hotline.service.workflow import (
    MEMBER_ACTIONS,
    PUBLIC_EVENTS,
    SUBMITTER_VISIBLE,
    Action,
    InvalidTransition,
    next_status,
)

TEXT_MAX = 2000
# A reply to a submitter with a phone goes as one text, "[CODE] " first: Twilio refuses a
# longer message, and /track does not show a texted reply.
SMS_TOO_LONG = N_("at most %(max)d characters: the reply goes as one text message")


def reply_max(case: Case) -> int:
    """How long a reply to this case may be."""
    return SMS_MAX - len(f"[{case.code}] ") if case.submitter_phone else TEXT_MAX


# The actions that need a text, and what the text is to them (the console names it so).
NEEDS_TEXT = {
    Action.NOTE: "note",
    Action.REPLY: "reply",
    Action.RESOLVE: "outcome",
    Action.PRESIDIUM: "reason",
    Action.WITHDRAW: "reason",
    Action.REJECT: "reason",
    Action.ANSWER: "answer",
}
ACTION_TEXTS = frozenset(NEEDS_TEXT.values())


def referral_due(day: date, tz: ZoneInfo) -> datetime:
    """A referral due on a (local) day is due at the end of that day, in UTC: its very last
    moment, so an answer in the day's last second is on time."""
    return datetime.combine(day, time.max, tzinfo=tz).astimezone(UTC)


REASSIGNED = N_("the case was reassigned meanwhile; reload and try again")
# Case fields an action may change without changing the status: guarded on write.
_GUARDED = ("assignee_id", "department_id", "referral_due", "presidium")


# Statuses in which a case is finished (its closed_at is set).
_ENDED = frozenset({Status.CLOSED, Status.WITHDRAWN, Status.REJECTED})


class CaseNotFound(Exception):
    pass


class Conflict(Exception):
    """The case changed since the actor looked at it; `field` names what they saw."""

    def __init__(self, message: str, field: str = "seen_status") -> None:
        super().__init__(message)
        self.field = field


class BadInput(Refusal):
    """A form field at fault in a case action."""


@dataclass(frozen=True)
class Request:
    """What a member asks for, as given in the console form."""

    action: Action
    actor: str
    text: str | None = None
    department: str | None = None
    due: datetime | None = None
    member: str | None = None
    seen_status: str | None = None  # the status the member acted on, if known
    seen_assignee: str | None = None  # whom they saw it with ("" none), if known
    public: bool = False  # a department's answer the submitter may read (on /track)


class Casework:
    def __init__(
        self,
        store: Store,
        signals: Signals,
        outbox: Outbox,
        notifier: Notifier,
        config: Callable[[], PointConfig],
        threads: IntakeSink,
    ) -> None:
        self.store = store
        self.signals = signals
        self.outbox = outbox
        self.notifier = notifier
        self.config = config
        self.threads = threads  # SMS threads: a finished case takes no more follow-ups

    def _check(self, req: Request, now: datetime) -> dict[str, Any]:
        """Validate what the action needs; the column updates it makes besides status."""
        config = self.config()
        text = req.text or ""  # made one shape in `act`
        if req.action in NEEDS_TEXT and not text:
            raise BadInput(NEEDS_TEXT[req.action], N_("required"))
        if len(text) > TEXT_MAX:
            raise BadInput("text", N_("at most %(max)d characters"), max=TEXT_MAX)
        updates: dict[str, Any] = {}
        if req.action is Action.REFER:
            if not req.department or config.department(req.department) is None:
                raise BadInput("department", N_("choose one of the point's departments"))
            if req.due is None:
                raise BadInput("due", N_("a due date is required"))
            if req.due < now:  # due at the end of its day: today is still allowed
                raise BadInput("due", N_("that day has passed: choose today or a later day"))
            updates |= {
                "department_id": req.department,
                "referral_due": to_utc_text(req.due),
                "referral_answered_at": None,  # a new referral waits for its own answer
            }
        if req.action is Action.REASSIGN:
            member = config.member(req.member or "")
            if member is None:
                raise BadInput("member", N_("choose one of the point's members"))
            updates["assignee_id"] = member.id
        if req.action is Action.RESOLVE:
            updates["outcome"] = text
        if req.action is Action.PRESIDIUM:
            updates["presidium"] = 1
        return updates

    async def act(self, code: str, req: Request, now: datetime) -> Case:
        """A member's action on a case (the console, the API)."""
        if req.action not in MEMBER_ACTIONS:
            raise InvalidTransition(
                N_("%(action)s is not a member's action"), action=req.action.value
            )
        if req.text is not None:  # what is stored, and texted, is the text made one shape
            text = normalized(req.text)
            if CONTROL.search(text):
                raise BadInput(
                    "text", N_("Contains control characters or line breaks that are not allowed.")
                )
            req = dataclasses.replace(req, text=text)
        case = await self.store.cases.by_code(code)
        if case is None:
            raise CaseNotFound(code)
        if req.seen_status and req.seen_status != case.status:
            raise Conflict(N_("the case changed meanwhile; reload and try again"))
        # An action from a page older than a reassign would act on another member's case
        # unseen (a reassign would undo the other one). One handed to the actor meanwhile
        # (a handoff as their shift began) is theirs to act on.
        seen = req.seen_assignee
        if seen is not None and seen != (case.assignee_id or "") and case.assignee_id != req.actor:
            raise Conflict(REASSIGNED, "seen_assignee")
        new = next_status(case.status, req.action)  # InvalidTransition -> 409
        updates = self._check(req, now)
        if req.action in (Action.ACKNOWLEDGE, Action.REPLY) and case.first_response_at is None:
            updates["first_response_at"] = to_utc_text(now)
        if new is Status.RESOLVED:
            # A new resolution asks for a new rating. The one given before (a low one that
            # reopened the case) stays the case's until a new one comes (Case.rating_pending);
            # the reports count both (store `ratings`).
            updates |= {"resolved_at": to_utc_text(now), "rating_requested_at": to_utc_text(now)}
        if req.action is Action.ANSWER or (
            new is Status.RESOLVED and case.status == Status.REFERRED
        ):
            # The referral is settled: by the department's answer, or by the outcome itself
            # when the case is resolved while still waiting on the department.
            updates["referral_answered_at"] = to_utc_text(now)
        if req.action is Action.REOPEN:  # a rating given stays, as after a low one
            updates |= {"rating_requested_at": None, "resolved_at": None}
            updates["reopens"] = case.reopens + 1
        if new in (Status.ASSIGNED, Status.REOPENED) and new != case.status:
            # Waiting to be taken up starts again (escalation counts from here).
            updates |= {"waiting_since": to_utc_text(now), "escalations": 0}
        referring = req.action is Action.REFER
        detail = {k: v for k, v in {
            "text": req.text or None,  # made one shape above
            # Where it went; and whose answer an answer is. Given with another action (the
            # API takes the fields with any), they were not checked: not kept.
            "department": req.department if referring else (
                case.department_id if req.action is Action.ANSWER else None),
            "due": to_utc_text(req.due) if referring and req.due else None,
            "to": updates.get("assignee_id"),
            # An answer marked public; a reason to withdraw or reject, which the submitter is
            # told (the console says so).
            "public": (req.action is Action.ANSWER and req.public)
            or req.action in (Action.WITHDRAW, Action.REJECT),
        }.items() if v}  # fmt: skip
        reply = None
        if req.action is Action.REPLY:  # stored with its event: the message, and the text
            text = req.text or ""
            if len(text) > reply_max(case):
                raise BadInput("text", SMS_TOO_LONG, max=reply_max(case))
            reply = OutgoingReply(text, req.actor, case.submitter_phone, f"[{case.code}] {text}")
        event_id, outbox_id = await self._apply(
            case, new, req.action.value, req.actor, detail, updates, now, reply
        )
        if outbox_id is not None:
            await self.outbox.wake([outbox_id])
        updated = await self.store.cases.by_code(code)
        assert updated is not None
        ending = req.action in (Action.WITHDRAW, Action.REJECT)
        await self._after(
            case, updated, event_id, now, req.action.value, req.text if ending else None,
            answer_public=req.action is not Action.ANSWER or req.public,
        )  # fmt: skip
        return updated

    async def _apply(
        self,
        case: Case,
        new: Status,
        kind: str,
        actor: str | None,
        detail: dict[str, Any],
        updates: dict[str, Any],
        now: datetime,
        reply: OutgoingReply | None = None,
    ) -> tuple[int, int | None]:
        """The case moved and its event recorded (with the reply, when there is one): the
        event's id and the reply's outbox row, if it is texted."""
        columns = {"status": str(new), "updated_at": to_utc_text(now), **updates}
        if new != case.status and new in _ENDED:
            columns["closed_at"] = to_utc_text(now)
        elif new != case.status and case.status in _ENDED:
            columns["closed_at"] = None  # reopened
        # What the member saw of the fields this action changes must still hold: of two
        # reassigns (or referrals) made at once, one lands and the other is answered 409.
        seen = {col: getattr(case, col) for col in updates if col in _GUARDED}
        event = (kind, str(new), actor, detail)
        moved = await self.store.cases.transition_replying(
            case, columns, event, now, reply, when=seen
        )
        if moved is None:
            if kind == "reassign":  # another reassign landed first
                raise Conflict(REASSIGNED, "seen_assignee")
            raise Conflict(N_("the case changed meanwhile; reload and try again"))
        return moved

    async def _after(
        self,
        before: Case,
        after: Case,
        event_id: int,
        now: datetime,
        kind: str,
        reason: str | None = None,
        *,
        answer_public: bool = True,
    ) -> None:
        """What follows a change: texts to the member and the submitter (with the `reason`
        for withdrawing or rejecting; a department's answer said to have come, when it is
        not `answer_public`), the end of an SMS thread, live updates, webhooks."""
        if after.assignee_id != before.assignee_id and kind != "rated":  # rate() tells its own
            await self.notifier.case_handed(after, event_id)
        # Referred on to another department is news to the submitter too (a new due date
        # for the same one is not).
        moved_on = kind == "refer" and after.department_id != before.department_id
        if (after.status != before.status or moved_on) and after.status in SUBMITTER_VISIBLE:
            await self.notifier.submitter_notice(
                after, f"{event_id}", reason=reason, answer_public=answer_public
            )
        phone = after.submitter_phone
        if after.status in FINISHED and phone:
            await self.threads.end_thread(phone, after.code)
        elif phone and (kind == "reply" or before.status in FINISHED):
            # A member asked them something, or it is looked at again (a low rating, a
            # reopen): the number's next texts are on this request, not new ones.
            await self.threads.open_thread(phone, after.code, self.config().sms.thread_within)
        await self.signals.case_changed(after.code, after.status)
        if kind in PUBLIC_EVENTS:  # offered to partners' webhooks in the event's write
            await self.signals.webhooks_due()

    async def rate(self, case: Case, rating: int, now: datetime, source: str) -> Case:
        """The submitter's rating: 3+ closes the loop; 2 or less reopens the case and
        escalates it to the standing head."""
        new = next_status(case.status, Action.RATE, rating=rating)
        if not case.rating_pending:
            raise Conflict(N_("this request has already been rated"))
        updates: dict[str, Any] = {"rating": rating, "rated_at": to_utc_text(now)}
        if new is Status.REOPENED:
            updates["assignee_id"] = self.config().duty.standing_head
            updates |= {"waiting_since": to_utc_text(now), "escalations": 0}
            # Not resolved any more (as when a member reopens it); the rating stays the
            # case's until a later one, and counts in the satisfaction rate for good.
            updates |= {"resolved_at": None, "reopens": case.reopens + 1}
        # Credited to the member whose handling was rated (store/reports: the satisfaction
        # rate per member), not to the standing head a low rating hands the case to.
        detail: dict[str, Any] = {"rating": rating, "source": source}
        if case.assignee_id:
            detail["member"] = case.assignee_id
        if new is Status.REOPENED:
            detail["escalated_to"] = updates["assignee_id"]
        event_id, _ = await self._apply(case, new, "rated", None, detail, updates, now)
        updated = await self.store.cases.by_code(case.code)
        assert updated is not None
        if new is Status.REOPENED:
            await self.notifier.low_rating(updated, rating, f"{event_id}", case.assignee_id)
        await self._after(case, updated, event_id, now, "rated")
        return updated

    async def close_unrated(self, now: datetime) -> int:
        """Close resolved cases whose rating did not come within the wait; each once."""
        wait = self.config().targets.rating_wait
        closed = 0
        for case in await self.store.cases.unrated_since(now - wait):
            try:
                event_id, _ = await self._apply(
                    case, Status.CLOSED, Action.AUTO_CLOSE.value, None, {}, {}, now
                )
            except Conflict:
                continue  # another worker got there first, or the case moved on
            after = await self.store.cases.by_code(case.code)
            assert after is not None
            await self._after(case, after, event_id, now, Action.AUTO_CLOSE.value)
            closed += 1
        return closed
