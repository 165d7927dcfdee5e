"""The reception store on both engines: the last seats go to exactly as many sign-ups as
there are, under concurrent writers; a phone signs up once; a refused sign-up leaves the
seat count as it was."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from hotline.service.store import Store
from hotline.service.store.receptions import Reception, Signup, SignupRefused

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
EVENT = {
    "topic": "助企帮扶主题接待",
    "details": "",
    "place": "联络点会议室",
    "starts_at": NOW + timedelta(days=4),
    "ends_at": NOW + timedelta(days=4, hours=2),
    "deputies": ("chen",),
    "departments": (),
    "capacity": 3,
}


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    try:
        yield opened
    finally:
        await opened.close()


def _signup(n: int) -> dict[str, str]:
    return {"company": f"企业{n}", "contact": "联系人", "phone": f"+86139000001{n:02d}",
            "raise_text": "诉求", "language": "zh-CN"}  # fmt: skip


async def test_concurrent_sign_ups_never_overfill(store: Store) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)

    async def one(n: int) -> str:
        try:
            await store.receptions.sign_up(reception, _signup(n), NOW)
        except SignupRefused as refused:
            return refused.reason
        return "seated"

    outcomes = await asyncio.gather(*(one(n) for n in range(12)))
    assert outcomes.count("seated") == 3 and outcomes.count("full") == 9
    found = await store.receptions.get(reception)
    assert found is not None and found.signed_up == 3
    assert len(await store.receptions.signups(reception)) == 3


async def test_a_sign_up_withdrawn_at_once_by_several_frees_one_place(store: Store) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)
    first, _ = await store.receptions.sign_up(reception, _signup(1), NOW)
    await store.receptions.sign_up(reception, _signup(2), NOW)
    told = lambda r, s: (f"withdrawn:{s.id}", f"{r.topic} {s.company}")  # noqa: E731
    outcomes = await asyncio.gather(
        *(store.receptions.withdraw(reception, first, NOW, told, UNSENT, "shen") for _ in range(5))
    )
    assert sum(o is not None for o in outcomes) == 1
    found = await store.receptions.get(reception)
    assert found is not None and found.signed_up == 1
    assert [s.company for s in await store.receptions.signups(reception)] == ["企业2"]
    rows = await store.fetch("SELECT purpose_key, to_number, body FROM outbox"
                             " WHERE purpose_key LIKE 'withdrawn:%'")  # fmt: skip
    assert [(r["purpose_key"], r["to_number"], r["body"]) for r in rows] == [
        (f"withdrawn:{first}", "+8613900000101", "助企帮扶主题接待 企业1")
    ]
    (kept,) = await store.receptions.withdrawals(reception)  # once, as it was
    assert (kept.company, kept.phone, kept.withdrawn_by) == ("企业1", "+8613900000101", "shen")
    assert kept.signed_up_at == kept.withdrawn_at == NOW


UNSENT = "reminder:"  # the purpose keys of the texts a withdrawal cancels, if unsent


def _telling(attempt: int) -> Callable[[Reception, Signup], tuple[str, str]]:
    return lambda reception, signup: (f"withdrawn:{attempt}", "取消")


async def test_signing_up_again_after_a_withdrawal_is_told_each_time(store: Store) -> None:
    """SQLite may give the newest sign-up's id to the next one: nothing told rests on it."""
    reception = await store.receptions.add(EVENT, "shen", NOW)
    for attempt in range(2):  # the purpose keys are the service's: never the reusable id
        first, queued = await store.receptions.sign_up(
            reception, _signup(1), NOW, (f"confirm:{attempt}", "已报名")
        )
        assert len(queued) == 1
        told = await store.receptions.withdraw(
            reception, first, NOW + timedelta(minutes=attempt), _telling(attempt), UNSENT, "shen"
        )
        assert told is not None and len(told) == 1
    rows = await store.fetch("SELECT purpose_key FROM outbox ORDER BY id")
    assert [r["purpose_key"] for r in rows] == ["confirm:0", "withdrawn:0", "confirm:1",
                                                 "withdrawn:1"]  # fmt: skip
    kept = await store.receptions.withdrawals(reception)  # each, in order
    assert [w.withdrawn_at for w in kept] == [NOW, NOW + timedelta(minutes=1)]


async def test_a_reminder_is_not_sent_to_a_sign_up_withdrawn_or_an_event_moved_meanwhile(
    store: Store,
) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)
    first, _ = await store.receptions.sign_up(reception, _signup(1), NOW)
    second, _ = await store.receptions.sign_up(reception, _signup(2), NOW)
    day = NOW + timedelta(days=4) - timedelta(hours=1)  # an hour before EVENT starts
    due = await store.receptions.to_remind(day, day + timedelta(days=1))
    assert [s.id for _, s in due] == [first, second]
    told = lambda r, s: (f"withdrawn:{s.id}", "取消")  # noqa: E731
    unsent = f"reception:{reception}:"  # how its reminders' purpose keys begin
    await store.receptions.withdraw(reception, first, NOW, told, unsent, "shen")  # after the read
    key = f"reception:{reception}:1"  # the reminders' purpose keys begin so
    assert await store.receptions.remind(*due[0], (f"{key}:a", "明天"), NOW) == []
    assert len(await store.receptions.remind(*due[1], (f"{key}:b", "明天"), NOW)) == 1
    assert await store.receptions.remind(*due[1], (f"{key}:c", "明天"), NOW) == []  # once
    # Moved since the list was read: that list's reminders are not sent (a new one will be).
    third, _ = await store.receptions.sign_up(reception, _signup(3), NOW)
    (stale,) = [pair for pair in await store.receptions.to_remind(day, day + timedelta(days=1))
                if pair[1].id == third]  # fmt: skip
    await store.receptions.change(reception, EVENT, NOW, moved=True, compose=lambda r, s: None)
    assert await store.receptions.remind(*stale, (f"{key}:d", "明天"), NOW) == []
    # Queued but not yet sent when its sign-up is withdrawn: it is not sent.
    await store.receptions.withdraw(reception, second, NOW, told, unsent, "shen")
    rows = await store.fetch(
        "SELECT purpose_key, status FROM outbox WHERE purpose_key LIKE 'reception:%'"
    )
    assert [(r["purpose_key"], r["status"]) for r in rows] == [(f"{key}:b", "canceled")]


async def test_a_repeated_phone_gives_its_seat_back(store: Store) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)
    await store.receptions.sign_up(reception, _signup(1), NOW)
    with pytest.raises(SignupRefused) as refused:
        await store.receptions.sign_up(reception, _signup(1) | {"company": "别家"}, NOW)
    assert refused.value.reason == "taken"
    found = await store.receptions.get(reception)
    assert found is not None and found.signed_up == 1


async def test_sign_up_closes_when_the_event_starts_or_is_cancelled(store: Store) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)
    with pytest.raises(SignupRefused, match="closed"):
        await store.receptions.sign_up(reception, _signup(1), NOW + timedelta(days=4))
    assert await store.receptions.cancel(reception, "shen", NOW, lambda r, s: None) == []
    assert await store.receptions.cancel(reception, "shen", NOW, lambda r, s: None) is None
    with pytest.raises(SignupRefused, match="closed"):
        await store.receptions.sign_up(reception, _signup(2), NOW)
    with pytest.raises(SignupRefused, match="closed"):
        await store.receptions.sign_up(404, _signup(3), NOW)
    assert await store.receptions.signups(reception) == []


async def test_a_started_event_is_neither_changed_nor_cancelled(store: Store) -> None:
    reception = await store.receptions.add(EVENT, "shen", NOW)
    await store.receptions.sign_up(reception, _signup(1), NOW, ("confirm:1", "已报名"))
    started = NOW + timedelta(days=4, minutes=1)
    told = lambda r, s: (f"told:{r.version}:{s.phone}", f"v{r.version}")  # noqa: E731
    assert await store.receptions.cancel(reception, "shen", started, told) is None
    assert (
        await store.receptions.change(reception, EVENT, started, moved=True, compose=told) is None
    )
    queued = await store.receptions.change(reception, EVENT, NOW, moved=True, compose=told)
    assert queued is not None and len(queued) == 1
    found = await store.receptions.get(reception)
    assert found is not None and found.version == 2 and found.cancelled_at is None
    rows = await store.fetch("SELECT purpose_key, body FROM outbox ORDER BY id")
    assert [(r["purpose_key"], r["body"]) for r in rows] == [
        ("confirm:1", "已报名"),
        ("told:2:+8613900000101", "v2"),
    ]


async def test_upcoming_and_past(store: Store) -> None:
    later = await store.receptions.add(EVENT, "shen", NOW)
    earlier = await store.receptions.add(
        EVENT | {"starts_at": NOW - timedelta(days=3), "ends_at": NOW - timedelta(days=2)},
        "shen", NOW - timedelta(days=10),
    )  # fmt: skip
    assert [r.id for r in await store.receptions.upcoming(NOW)] == [later]
    assert [r.id for r in await store.receptions.past(NOW)] == [earlier]
