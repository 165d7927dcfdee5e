"""Every (status, action) pair of the state machine, checked against the lifecycle."""

from __future__ import annotations

import pytest

from hotline.service.cases import Status
from hotline.service.workflow import (
    MEMBER_ACTIONS,
    RULES,
    Action,
    InvalidTransition,
    allowed,
    next_status,
)

S = Status
A = Action

# The whole table, written out: (status, action) -> result; anything absent is refused.
EXPECTED: dict[tuple[Status, Action], Status] = {
    (S.ASSIGNED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.REOPENED, A.ACKNOWLEDGE): S.ACKNOWLEDGED,
    **{(s, A.NOTE): s for s in S},
    (S.ASSIGNED, A.REPLY): S.ACKNOWLEDGED,
    (S.REOPENED, A.REPLY): S.ACKNOWLEDGED,
    (S.ACKNOWLEDGED, A.REPLY): S.ACKNOWLEDGED,
    (S.REFERRED, A.REPLY): S.REFERRED,
    (S.RESPONDED, A.REPLY): S.RESPONDED,
    (S.RESOLVED, A.REPLY): S.RESOLVED,
    **{(s, A.REFER): S.REFERRED for s in (S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED)},
    (S.REFERRED, A.ANSWER): S.RESPONDED,
    **{(s, A.PRESIDIUM): s for s in (S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED, S.RESOLVED)},
    **{(s, A.RESOLVE): S.RESOLVED for s in (S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED)},
    (S.RESOLVED, A.CLOSE): S.CLOSED,
    (S.RESOLVED, A.REOPEN): S.REOPENED,
    (S.CLOSED, A.REOPEN): S.REOPENED,
    (S.RESOLVED, A.AUTO_CLOSE): S.CLOSED,
    **{
        (s, a): t
        for s in (S.RECEIVED, S.ASSIGNED, S.ACKNOWLEDGED, S.REFERRED, S.RESPONDED, S.REOPENED)
        for a, t in ((A.REASSIGN, S.ASSIGNED), (A.WITHDRAW, S.WITHDRAWN), (A.REJECT, S.REJECTED))
    },
    (S.REFERRED, A.REASSIGN): S.REFERRED,  # the department keeps it
}


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("action", [a for a in A if a is not A.RATE])
def test_every_transition(status: Status, action: Action) -> None:
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action.value} a case in status"):
            next_status(status, action)
    else:
        assert next_status(status, action) == expected


@pytest.mark.parametrize(
    ("rating", "result"), [(1, S.REOPENED), (2, S.REOPENED), (3, S.CLOSED), (5, S.CLOSED)]
)
def test_rating(rating: int, result: Status) -> None:
    assert next_status(S.RESOLVED, A.RATE, rating=rating) == result


@pytest.mark.parametrize("rating", [None, 0, 6])
def test_bad_ratings(rating: int | None) -> None:
    with pytest.raises(InvalidTransition):
        next_status(S.RESOLVED, A.RATE, rating=rating)


@pytest.mark.parametrize("status", [s for s in S if s is not S.RESOLVED])
def test_only_resolved_cases_are_rated(status: Status) -> None:
    with pytest.raises(InvalidTransition):
        next_status(status, A.RATE, rating=5)


def test_terminal_statuses_only_take_notes() -> None:
    assert allowed(S.WITHDRAWN) == [A.NOTE]
    assert allowed(S.REJECTED) == [A.NOTE]
    assert set(allowed(S.CLOSED)) == {A.NOTE, A.REOPEN}


def test_members_cannot_rate_or_auto_close() -> None:
    assert A.RATE not in MEMBER_ACTIONS and A.AUTO_CLOSE not in MEMBER_ACTIONS
    assert set(RULES) == set(A)
