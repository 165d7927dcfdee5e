"""Escalation and handoff, driven by an injected clock; each step happens once even when two
workers run the same timed work."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web

from hotline import appkeys
from hotline.service.cases import Intake
from hotline.service.casework import Request
from hotline.service.workflow import Action
from tests.helpers import Client, Clock, office_hours_config, route_all, stored
from tests.web.console_helpers import act, give_password, sign_in


async def new_case(app: web.Application, key: str) -> str:
    intake = Intake(key, "web", "路灯坏了", app[appkeys.CLOCK](), "zh-CN")
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await route_all(app)
    return code


async def texts(app: web.Application, prefix: str) -> list[str]:
    rows = await app[appkeys.STORE].fetch(
        "SELECT to_number, body FROM outbox WHERE purpose_key LIKE :p ORDER BY id",
        {"p": prefix + "%"},
    )
    return [f"{r['to_number']} {r['body']}" for r in rows]


async def test_unacknowledged_cases_escalate_and_repeat_until_acknowledged(
    client: Client, app: web.Application, clock: Clock
) -> None:
    code = await new_case(app, "web:e1")
    timed = app[appkeys.TIMED]
    clock.now += timedelta(minutes=29)
    assert await timed.escalate(clock.now) == 0
    clock.now += timedelta(minutes=2)  # past ack_within (30m)
    assert await timed.escalate(clock.now) == 1
    assert await timed.escalate(clock.now) == 0  # a second worker: nothing more
    clock.now += timedelta(minutes=30)  # remind_every
    assert await timed.escalate(clock.now) == 1
    sent = await texts(app, "escalate:")
    assert len(sent) == 2 and all(s.startswith("+8613800000000 ") for s in sent)  # shen
    assert f"诉求 {code} 已 31 分钟未受理（朱代表）" in sent[0]
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    kinds = [e.kind for e in await app[appkeys.STORE].cases.events(case.id)]
    assert kinds.count("escalated") == 2
    # Listed with the case's texts (its page shows every text sent about it).
    listed = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id)]
    assert sum("未受理" in body for body in listed) == 2

    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    await act(client, code, "acknowledge")
    clock.now += timedelta(hours=2)
    assert await timed.escalate(clock.now) == 0  # acknowledged: the chain stops


async def on_duty(app: web.Application, now: datetime) -> str:
    found = (await app[appkeys.DUTY].schedule(now)).who(now)
    assert found is not None
    return found[0]


async def assignee(app: web.Application, code: str) -> str | None:
    return (await stored(app, code)).assignee_id


async def test_leave_recorded_during_a_shift_sends_its_waiting_cases_to_who_stands_in(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """zhu calls in sick at 11:45, their leave from the shift's start: no change of shift
    happens now, but the cases waiting with zhu go to whoever stands in."""
    timed, duty = app[appkeys.TIMED], app[appkeys.DUTY]
    await timed.hand_off(clock.now)  # zhu's shift, since 08:30
    code = await new_case(app, "web:sick")
    assert await assignee(app, code) == "zhu"
    shift = datetime.fromisoformat("2026-11-24T08:30:00+08:00")
    clock.now += timedelta(minutes=45)
    await duty.add_away("zhu", shift, shift + timedelta(days=1), "shen", clock.now, "病假")
    standing_in = await on_duty(app, clock.now)
    assert standing_in != "zhu"
    assert await timed.hand_off(clock.now) == 1
    assert await assignee(app, code) == standing_in
    assert await timed.hand_off(clock.now) == 0


async def test_an_override_edited_or_removed_during_it_moves_its_cases_on(
    client: Client, app: web.Application, clock: Clock
) -> None:
    timed, duty = app[appkeys.TIMED], app[appkeys.DUTY]
    start = datetime.fromisoformat("2026-11-24T14:00:00+08:00")
    cover = await duty.add_cover("chen", start, start + timedelta(hours=4), "shen", clock.now)
    clock.now = start + timedelta(minutes=1)
    await timed.hand_off(clock.now)
    code = await new_case(app, "web:cover")
    assert await assignee(app, code) == "chen"
    clock.now += timedelta(minutes=30)  # the cover given to wang instead
    cover = await duty.edit(cover, "wang", start, start + timedelta(hours=4), "shen", clock.now)
    assert await timed.hand_off(clock.now) == 1
    assert await assignee(app, code) == "wang"
    clock.now += timedelta(minutes=30)  # and then taken back: zhu's shift again
    await duty.remove(cover, "shen", clock.now)
    assert await timed.hand_off(clock.now) == 1
    assert await assignee(app, code) == "zhu"


async def test_a_member_who_goes_on_after_their_own_override_gets_one_summary(
    client: Client, app: web.Application, clock: Clock
) -> None:
    timed, duty = app[appkeys.TIMED], app[appkeys.DUTY]
    clock.now = datetime.fromisoformat("2026-11-24T08:31:00+08:00")
    await timed.hand_off(clock.now)  # zhu's shift begins: their summary
    before = await texts(app, "handoff:")
    start = datetime.fromisoformat("2026-11-24T10:00:00+08:00")
    await duty.add_cover("zhu", start, start + timedelta(hours=2), "shen", clock.now)
    for at in ("10:01", "12:01"):
        clock.now = datetime.fromisoformat(f"2026-11-24T{at}:00+08:00")
        await timed.hand_off(clock.now)
    assert await texts(app, "handoff:") == before


class TestAfterALongBreak:
    """Monday 2026-11-30 a day off of the point's own: from Friday 17:30 to Tuesday 08:30
    no duty hours (87 hours, more than the three days a handoff first looks back)."""

    @pytest.fixture
    def config_path(self, tmp_path: Path, config_path: Path) -> Path:
        path = office_hours_config(config_path, tmp_path)
        holiday = '\n[[duty.holiday]]\ndate = "2026-11-30"\nname = "联络站调休"\n'
        path.write_text(path.read_text("utf-8") + holiday, "utf-8")
        return path

    async def test_the_member_of_the_first_shift_after_it_hears_of_what_was_held(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        clock.now = datetime.fromisoformat("2026-11-28T10:00:00+08:00")  # Saturday
        code = await new_case(app, "web:long-break")
        member = await assignee(app, code)
        clock.now = datetime.fromisoformat("2026-12-01T08:31:00+08:00")  # Tuesday
        await app[appkeys.TIMED].hand_off(clock.now)
        assert member == await on_duty(app, clock.now)
        phone = {"chen": "+8613800000001", "zhu": "+8613800000002", "wang": "+8613800000003"}
        assert await texts(app, "handoff:") == [
            f"{phone[member]} 您的值班开始：在办诉求 1 件，其中临近期限 0 件、已超期 0 件。"
        ]
        await app[appkeys.TIMED].hand_off(clock.now + timedelta(minutes=1))  # once
        assert len(await texts(app, "handoff:")) == 1


class TestHeldRequests:
    @pytest.fixture
    def config_path(self, tmp_path: Path, config_path: Path) -> Path:
        return office_hours_config(config_path, tmp_path)

    async def test_a_held_request_escalates_only_after_duty_resumes(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        clock.now = datetime.fromisoformat("2026-11-27T19:00:00+08:00")  # Friday evening
        await new_case(app, "web:held")
        timed = app[appkeys.TIMED]
        clock.now = datetime.fromisoformat("2026-11-30T08:50:00+08:00")  # Monday, 20 min in
        assert await timed.escalate(clock.now) == 0
        clock.now = datetime.fromisoformat("2026-11-30T09:01:00+08:00")
        assert await timed.escalate(clock.now) == 1

    async def test_a_held_requests_member_hears_of_it_when_their_shift_begins(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        """Held on Friday evening for Monday's member: nobody is texted at night; the
        submitter hears who has it, and the member's summary counts it on Monday."""
        clock.now = datetime.fromisoformat("2026-11-27T19:00:00+08:00")  # Friday evening
        code = await new_case(app, "web:held-quiet")
        member = await assignee(app, code)
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None and member is not None
        phone = {"chen": "+8613800000001", "zhu": "+8613800000002", "wang": "+8613800000003"}[
            member
        ]
        texted = [o.to_number for o in await app[appkeys.OUTBOX].for_case(case.id)]
        assert phone not in texted
        clock.now = datetime.fromisoformat("2026-11-30T08:31:00+08:00")  # Monday, shift begins
        await app[appkeys.TIMED].hand_off(clock.now)
        assert await assignee(app, code) == member
        assert await texts(app, "handoff:") == [
            f"{phone} 您的值班开始：在办诉求 1 件，其中临近期限 0 件、已超期 0 件。"
        ]

    async def test_a_paired_request_outside_duty_hours_escalates_only_after_they_resume(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        """A paired company (包保) writes on Saturday night: its member has it, but nobody
        escalates it to the standing head every half hour of the weekend; its clocks start
        when duty hours do, as a held request's."""
        clock.now = datetime.fromisoformat("2026-11-28T02:00:00+08:00")  # Saturday night
        intake = dataclasses.replace(
            Intake("web:paired-night", "web", "厂门口积水", clock(), "zh-CN"),
            company="平湖嘉创精密机械有限公司",
        )
        code = (await app[appkeys.INTAKE].submit(intake)).code
        await route_all(app)
        case = await stored(app, code)
        assert case.assignee_id == "chen" and case.held_until == datetime.fromisoformat(
            "2026-11-30T08:30:00+08:00"
        )
        timed = app[appkeys.TIMED]
        for at in ("2026-11-28T02:31", "2026-11-29T12:00", "2026-11-30T08:59"):
            clock.now = datetime.fromisoformat(f"{at}:00+08:00")
            assert await timed.escalate(clock.now) == 0, at
        clock.now = datetime.fromisoformat("2026-11-30T09:01:00+08:00")
        assert await timed.escalate(clock.now) == 1
        clock.now = datetime.fromisoformat("2026-11-30T09:05:00+08:00")
        await timed.hand_off(clock.now)
        assert (await stored(app, code)).assignee_id == "chen"  # still their member's

    async def test_a_held_request_stored_after_its_shift_began_is_told_to_its_member(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        """Received a second before duty hours, stored after the shift's summary went out
        (counting nothing): its member is texted when it is stored, not never."""
        clock.now = datetime.fromisoformat("2026-11-30T08:29:59+08:00")  # Monday
        intake = Intake("web:late", "web", "路灯坏了", clock(), "zh-CN")
        code = (await app[appkeys.INTAKE].submit(intake)).code
        clock.now = datetime.fromisoformat("2026-11-30T08:30:00+08:00")
        await app[appkeys.TIMED].hand_off(clock.now)
        assert await texts(app, "handoff:") == [
            "+8613800000002 您的值班开始：在办诉求 0 件，其中临近期限 0 件、已超期 0 件。"
        ]
        clock.now = datetime.fromisoformat("2026-11-30T08:30:20+08:00")
        await route_all(app)
        case = await stored(app, code)
        assert case.assignee_id == "zhu"
        told = [o.to_number for o in await app[appkeys.OUTBOX].for_case(case.id)]
        assert "+8613800000002" in told

    async def test_a_held_request_follows_the_roster_when_handling_resumes(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        """Held on Tuesday evening for Wednesday's member (chen, on duty no day before);
        chen is then given leave: on Wednesday the request is with whoever stands in."""
        timed, duty = app[appkeys.TIMED], app[appkeys.DUTY]
        clock.now = datetime.fromisoformat("2026-12-01T19:00:00+08:00")  # Tuesday evening
        code = await new_case(app, "web:held-away")
        first = await assignee(app, code)
        assert first == "chen"
        assert await timed.hand_off(clock.now) == 0  # outside hours: it waits
        wednesday = datetime.fromisoformat("2026-12-02T08:30:00+08:00")
        await duty.add_away(first, wednesday, wednesday + timedelta(days=1), "shen", clock.now)
        clock.now = wednesday + timedelta(minutes=1)
        assert await timed.hand_off(clock.now) == 1
        assert await assignee(app, code) == await on_duty(app, clock.now) != first


async def test_handoff_moves_unacknowledged_cases_once_and_sends_a_summary(
    client: Client, app: web.Application, clock: Clock
) -> None:
    timed = app[appkeys.TIMED]
    await timed.hand_off(clock.now)  # marks the current shift (zhu's, since 08:30)
    moved_code = await new_case(app, "web:h1")
    kept_code = await new_case(app, "web:h2")
    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    await act(client, kept_code, "acknowledge")

    clock.now = datetime.fromisoformat("2026-11-25T08:30:00+08:00")  # wang's shift begins
    assert await timed.hand_off(clock.now) == 1
    assert await timed.hand_off(clock.now) == 0  # a second worker, or a restart: done already
    store = app[appkeys.STORE]
    moved = await store.cases.by_code(moved_code)
    kept = await store.cases.by_code(kept_code)
    assert moved is not None and moved.assignee_id == "wang"
    assert kept is not None and kept.assignee_id == "zhu"  # taken up: stays with zhu
    events = await store.cases.events(moved.id)
    assert events[-1].kind == "handoff" and events[-1].detail == {"from": "zhu", "to": "wang"}
    summary = await texts(app, "handoff:")
    assert summary[-1].startswith("+8613800000003 您的值班开始：在办诉求 1 件")


async def test_handoff_after_missing_two_changes_of_duty_moves_both_shifts_cases(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Workers down from zhu's shift through wang's and for days after: at a later shift of
    chen's, the cases of both go to chen (not only those of the shift just before)."""
    timed = app[appkeys.TIMED]
    await timed.hand_off(clock.now)  # zhu's shift, 2026-11-24
    from_zhu = await new_case(app, "web:m1")
    clock.now = datetime.fromisoformat("2026-11-25T09:00:00+08:00")  # wang's shift
    from_wang = await new_case(app, "web:m2")  # routed, but no handoff ran since zhu's
    clock.now = datetime.fromisoformat("2026-11-29T09:00:00+08:00")  # days later, chen's shift
    assert await timed.hand_off(clock.now) == 2
    store = app[appkeys.STORE]
    for code in (from_zhu, from_wang):
        case = await store.cases.by_code(code)
        assert case is not None and case.assignee_id == "chen", code


async def test_handoff_follows_overrides(
    client: Client, app: web.Application, clock: Clock
) -> None:
    timed = app[appkeys.TIMED]
    await timed.hand_off(clock.now)
    code = await new_case(app, "web:h3")
    start = datetime.fromisoformat("2026-11-24T14:00:00+08:00")
    await app[appkeys.DUTY].add_cover("chen", start, start + timedelta(hours=4), "shen", clock.now)
    clock.now = start + timedelta(minutes=1)
    assert await timed.hand_off(clock.now) == 1
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.assignee_id == "chen"


async def test_handoff_moves_only_what_the_duty_gave(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """At a handoff the outgoing member's untouched cases follow the duty — but not one
    paired with them (包保), nor one a member gave them."""
    timed, store = app[appkeys.TIMED], app[appkeys.STORE]
    await timed.hand_off(clock.now)  # zhu's shift
    given = await new_case(app, "web:given")  # zhu's by the duty, then given to chen
    start = datetime.fromisoformat("2026-11-24T14:00:00+08:00")
    await app[appkeys.DUTY].add_cover("chen", start, start + timedelta(hours=4), "shen", clock.now)
    clock.now = start + timedelta(minutes=1)
    assert await timed.hand_off(clock.now) == 1  # zhu -> chen: `given`, untouched
    await app[appkeys.CASEWORK].act(
        given, Request(Action.REASSIGN, "shen", member="wang"), clock.now
    )
    await app[appkeys.CASEWORK].act(
        given, Request(Action.REASSIGN, "shen", member="chen"), clock.now
    )
    by_duty = await new_case(app, "web:duty")
    paired = Intake(
        "web:paired", "web", "停电了", clock.now, "zh-CN", company="平湖嘉创精密机械有限公司"
    )
    paired_code = (await app[appkeys.INTAKE].submit(paired)).code
    await route_all(app)
    assigned = {c: await store.cases.by_code(c) for c in (given, by_duty, paired_code)}
    assert {c: case.assignee_id for c, case in assigned.items() if case} == dict.fromkeys(
        (given, by_duty, paired_code), "chen"
    )
    clock.now = start + timedelta(hours=4, minutes=1)  # the cover ends: zhu again
    assert await timed.hand_off(clock.now) == 1
    after = {c: (await store.cases.by_code(c)) for c in (given, by_duty, paired_code)}
    assert {c: case.assignee_id for c, case in after.items() if case} == {
        given: "chen",
        by_duty: "zhu",
        paired_code: "chen",
    }


async def test_a_rating_that_kept_the_member_does_not_pin_the_case_at_handoff(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """The duty gave it; rated 4 and closed; a member reopened it, untouched since: it
    follows the duty at the handoff like any case the duty gave (only a low rating's
    escalation chose a member)."""
    timed, store = app[appkeys.TIMED], app[appkeys.STORE]
    await timed.hand_off(clock.now)  # zhu's shift
    code = await new_case(app, "web:rated")
    case = await store.cases.by_code(code)
    assert case is not None and case.assignee_id == "zhu"
    rated = ("rated", "closed", None, {"rating": 4, "source": "sms"})
    closed = await store.cases.transition(case, {"status": "closed"}, rated, clock.now)
    assert closed is not None
    case = await store.cases.by_code(code)
    assert case is not None
    reopen = ("reopen", "reopened", "shen", dict[str, object]())
    assert await store.cases.transition(case, {"status": "reopened"}, reopen, clock.now)
    clock.now = datetime.fromisoformat("2026-11-25T08:30:00+08:00")  # wang's shift
    assert await timed.hand_off(clock.now) == 1
    moved = await store.cases.by_code(code)
    assert moved is not None and moved.assignee_id == "wang"


async def test_an_override_of_a_member_no_longer_in_the_config_is_set_aside(
    client: Client, app: web.Application, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The member was taken out of the point config by hand (the console refuses while they
    hold future overrides): their override no longer routes requests to nobody."""
    duty = app[appkeys.DUTY]
    start = datetime.fromisoformat("2026-11-24T14:00:00+08:00")
    cover = await duty.add_cover("wang", start, start + timedelta(hours=4), "shen", clock.now)
    clock.now = start + timedelta(minutes=1)
    assert await on_duty(app, clock.now) == "wang"
    config = app[appkeys.DIRECTORY].config
    without = dataclasses.replace(
        config, members=tuple(m for m in config.members if m.id != "wang")
    )
    duty.config = lambda: without
    assert await on_duty(app, clock.now) == "zhu"  # the rotation's, as if it were not there
    assert f"override #{cover} names 'wang', no member of the point now" in caplog.text
