"""Case codes and the intake record."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from hotline.service.cases import (
    CODE_ALPHABET,
    CODE_LENGTH,
    Event,
    Intake,
    Referral,
    code_for,
    normalize_code,
)
from hotline.service.tracking import status_changes


def test_codes_are_short_and_unambiguous() -> None:
    codes = {code_for(b"secret", f"web:{i}", 0) for i in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert len(code) == CODE_LENGTH <= 8
        assert not set(code) & set("01OILUV")
        assert set(code) <= set(CODE_ALPHABET)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("k7m4qxa", "K7M4QXA"), (" K7M-4QXA ", "K7M4QXA"), ("k7m 4qx a", "K7M4QXA")],
)
def test_typed_codes_normalize(typed: str, expected: str) -> None:
    assert normalize_code(typed) == expected


@pytest.mark.parametrize(
    "typed", ["", "K7M4QX", "K7M4QXAB", "K7M4QX0", "K7M4QXO", "../../x", "K7M4QX\x00"]
)
def test_impossible_codes_are_refused(typed: str) -> None:
    assert normalize_code(typed) is None


def test_intake_round_trips_through_json() -> None:
    intake = Intake(
        key="web:abc",
        channel="web",
        text="路灯坏了\n请修",
        received_at=datetime(2026, 11, 24, 3, 0, 0, 123456, tzinfo=UTC),
        language="zh-CN",
        phone="+8613800000009",
    )
    assert Intake.from_json(intake.to_json()) == intake
    # Without a place, no place fields at all: a worker older than them reads it as before.
    assert not {"address", "latitude", "longitude"} & set(json.loads(intake.to_json()))
    placed = dataclasses.replace(intake, address="嘉创智谷东门", latitude=30.61, longitude=121.06)
    assert Intake.from_json(placed.to_json()) == placed
    # Fields a newer version writes are left out, not a reason to set the intake aside.
    newer = json.loads(intake.to_json()) | {"mood": "urgent"}
    assert Intake.from_json(json.dumps(newer)) == intake


PLACED = '{"key": "k", "channel": "open311", "text": "x", "language": "en", "received_at": "2026-11-24T03:00:00.000000Z", '  # noqa: E501


@pytest.mark.parametrize(
    "payload",
    [
        "[]",
        "{}",
        PLACED + '"latitude": "30.6", "longitude": 121}',
        PLACED + '"latitude": 300, "longitude": 121}',
        PLACED + '"latitude": true, "longitude": 121}',
        PLACED + '"address": 5}',
        PLACED + '"latitude": 91, "longitude": 121}',
        PLACED + '"latitude": 30.6}',
        PLACED + '"latitude": NaN, "longitude": 121}',
        (
            '{"key": "", "channel": "web", "text": "x", "language": "en",'
            ' "received_at": "2026-11-24T03:00:00.000000Z"}'
        ),
        "not json",
    ],
)
def test_malformed_intake_is_refused(payload: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        Intake.from_json(payload)


def test_candidate_codes_are_fixed_per_key_and_secret() -> None:
    first = code_for(b"secret", "web:k1", 0)
    assert first == code_for(b"secret", "web:k1", 0)
    assert normalize_code(first) == first
    assert first != code_for(b"secret", "web:k1", 1)
    assert first != code_for(b"other secret", "web:k1", 0)
    codes = {code_for(b"secret", f"web:{i}", 0) for i in range(5000)}
    assert len(codes) == 5000


def test_a_referral_says_how_it_stands_or_ended() -> None:
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    due = at + timedelta(days=5)
    now = due + timedelta(days=1)
    before, after = due - timedelta(hours=1), due + timedelta(hours=1)
    cases = [
        (Referral("budget", at, due, before, None), now, "on-time"),
        (Referral("budget", at, due, due, None), now, "on-time"),  # at its very end
        (Referral("budget", at, due, after, None), now, "late"),
        (Referral("budget", at, due, None, before), now, "taken-back"),
        (Referral("budget", at, due, None, after), now, "taken-back-late"),
        (Referral("budget", at, due, None, None), before, "waiting"),
        (Referral("budget", at, due, None, None), now, "overdue"),
    ]
    assert [r.state(when) for r, when, _ in cases] == [state for _, _, state in cases]


def test_the_public_timeline_shows_a_referral_on_to_another_department() -> None:
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    steps = [
        ("received", "received", {}),
        ("assigned", "assigned", {}),
        ("acknowledge", "acknowledged", {}),
        ("note", "acknowledged", {"text": "内部"}),
        ("refer", "referred", {"department": "budget"}),
        ("refer", "referred", {"department": "budget"}),  # a new due date: not news
        ("refer", "referred", {"department": "urban"}),  # moved on: shown
        ("answer", "responded", {}),
    ]
    events = [
        Event(at + timedelta(hours=n), kind, status, None, detail)
        for n, (kind, status, detail) in enumerate(steps)
    ]
    shown = [(e.kind, e.detail.get("department")) for e in status_changes(events)]
    assert shown == [
        ("received", None), ("assigned", None), ("acknowledge", None),
        ("refer", "budget"), ("refer", "urban"), ("answer", None),
    ]  # fmt: skip
