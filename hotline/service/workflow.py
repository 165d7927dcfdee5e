"""The case lifecycle as a pure state machine: which action is allowed in which status.

received → assigned → acknowledged → referred → responded → resolved → closed, with
reopened (back to work, like assigned) and the terminal withdrawn / rejected. A reassign
puts a case back to `assigned` for its new member to take up — except one waiting on a
department: the department keeps it (and its clock), only the deputy following it changes.
"""

from __future__ import annotations

from enum import StrEnum

from hotline.service.cases import Status
from hotline.service.i18n import N_

S = Status


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    NOTE = "note"
    REPLY = "reply"
    REFER = "refer"
    ANSWER = "answer"  # the department's answer is in
    PRESIDIUM = "presidium"  # escalated to the presidium's work-suggestion mechanism
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    REASSIGN = "reassign"
    WITHDRAW = "withdraw"
    REJECT = "reject"
    RATE = "rate"  # the submitter's 1-5 rating
    AUTO_CLOSE = "auto-close"  # no rating within the wait


OPEN = frozenset({S.RECEIVED, S.ASSIGNED, S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED, S.REOPENED})
IN_HAND = frozenset({S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED})
EVERY = frozenset(S)
# Statuses the submitter hears about (by SMS when there is a number, and on /track).
SUBMITTER_VISIBLE = frozenset(
    {S.ASSIGNED, S.REFERRED, S.RESPONDED, S.RESOLVED, S.REOPENED, S.WITHDRAWN, S.REJECTED}
)
LOW_RATING = 2  # this or less reopens the case and escalates it
# Event kinds a submitter could see (their request's progress, the point's replies): these
# go to partners' webhooks. Internal ones (notes, reassigns, escalations, handoffs) do not.
PUBLIC_EVENTS = (
    "received", "assigned", "acknowledge", "reply", "refer", "answer", "presidium", "resolve",
    "close", "reopen", "withdraw", "reject", "rated", "auto-close",
)  # fmt: skip

# What an event does to a case's open referral (the one waiting on a department's answer;
# store/cases keeps the `referrals` history from these): the department's answer, or an
# outcome recorded while waiting, answers it; a withdrawal or a rejection takes it back
# unanswered; a new referral takes it back too, unless it gives the same department a later
# due date before the first has passed (an extension: the referral stays, with its new due
# date). Each is a no-op when no referral is open. (Before a reassign kept a referral, a
# reassign took it back: migration 0013 reads the events of then by that rule.)
REFERRAL_ANSWERED = frozenset({"answer", "resolve"})
REFERRAL_ENDED = frozenset({"refer", "withdraw", "reject"})

# action -> (statuses it is allowed from, status it leads to; None keeps the status)
RULES: dict[Action, tuple[frozenset[Status], Status | None]] = {
    Action.ACKNOWLEDGE: (frozenset({S.ASSIGNED, S.REOPENED}), S.ACKNOWLEDGED),
    Action.NOTE: (EVERY, None),
    Action.REPLY: (OPEN - {S.RECEIVED} | {S.RESOLVED}, None),
    Action.REFER: (IN_HAND, S.REFERRED),
    Action.ANSWER: (frozenset({S.REFERRED}), S.RESPONDED),
    Action.PRESIDIUM: (IN_HAND | {S.RESOLVED}, None),
    Action.RESOLVE: (IN_HAND, S.RESOLVED),
    Action.CLOSE: (frozenset({S.RESOLVED}), S.CLOSED),
    Action.REOPEN: (frozenset({S.RESOLVED, S.CLOSED}), S.REOPENED),
    Action.REASSIGN: (OPEN, S.ASSIGNED),
    Action.WITHDRAW: (OPEN, S.WITHDRAWN),
    Action.REJECT: (OPEN, S.REJECTED),
    Action.RATE: (frozenset({S.RESOLVED}), S.CLOSED),
    Action.AUTO_CLOSE: (frozenset({S.RESOLVED}), S.CLOSED),
}

# What a person can do from the console (RATE and AUTO_CLOSE are not theirs).
MEMBER_ACTIONS = tuple(a for a in Action if a not in (Action.RATE, Action.AUTO_CLOSE))


# What people call each action and status, for messages in either language.
ACTION_NAMES = {
    Action.ACKNOWLEDGE: N_("acknowledge"),
    Action.NOTE: N_("add a note to"),
    Action.REPLY: N_("reply on"),
    Action.REFER: N_("refer"),
    Action.ANSWER: N_("record an answer on"),
    Action.PRESIDIUM: N_("escalate to the presidium"),
    Action.RESOLVE: N_("resolve"),
    Action.CLOSE: N_("close"),
    Action.REOPEN: N_("reopen"),
    Action.REASSIGN: N_("reassign"),
    Action.WITHDRAW: N_("withdraw"),
    Action.REJECT: N_("reject"),
    Action.RATE: N_("rate"),
    Action.AUTO_CLOSE: N_("close without a rating"),
}


class InvalidTransition(Exception):
    """An action the case's status does not allow. `message` is a catalog id and `params`
    its values, so each reader gets it in their language; str() is the English."""

    def __init__(self, message: str, **params: str) -> None:
        self.message = message
        self.params = params
        super().__init__(message % params)


def next_status(status: str, action: Action, *, rating: int | None = None) -> Status:
    """The status after `action`; raises InvalidTransition when it is not allowed."""
    current = Status(status)
    allowed, target = RULES[action]
    if current not in allowed:
        raise InvalidTransition(
            N_("cannot %(action)s a case in status “%(status)s”"),
            action=action.value,
            status=current.value,
        )
    if action is Action.RATE:
        if rating is None or not 1 <= rating <= 5:
            raise InvalidTransition(N_("a rating is a whole number from 1 to 5"))
        return S.REOPENED if rating <= LOW_RATING else S.CLOSED
    if action is Action.REPLY and current in (S.ASSIGNED, S.REOPENED):
        return S.ACKNOWLEDGED  # a reply to the submitter is a first response
    if action is Action.REASSIGN and current is S.REFERRED:
        return S.REFERRED  # the department keeps it; another deputy follows it
    return target or current


def allowed(status: str) -> list[Action]:
    """The member actions allowed in a status, in the order the console shows them."""
    current = Status(status)
    return [a for a in MEMBER_ACTIONS if current in RULES[a][0]]
