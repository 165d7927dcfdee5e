"""Routing decisions: on duty at receipt; outside duty hours, held or the standing head."""

from __future__ import annotations

import dataclasses
from datetime import datetime, time, timedelta

from hotline.service.cases import Intake
from hotline.service.config import DutyHours, demo_config_path
from hotline.service.configfile import load_config
from hotline.service.duty import Away, Schedule
from hotline.service.routing import RoutingPolicy

CONFIG = load_config(demo_config_path())
HOURS = DutyHours("workdays", time(8, 30), time(17, 30))


def policy(outside: str = "hold", hours: DutyHours | None = HOURS) -> RoutingPolicy:
    duty = dataclasses.replace(CONFIG.duty, hours=hours, outside_hours=outside)
    return RoutingPolicy(dataclasses.replace(CONFIG, duty=duty))


def at(text: str) -> Intake:
    return Intake("k", "web", "x", datetime.fromisoformat(text + "+08:00"), "zh-CN")


def test_on_duty() -> None:
    a = policy().assign(at("2026-11-24T10:00:00"))
    assert (a.member_id, a.reason, a.due) == ("zhu", "on-duty", None)


def test_held_for_the_next_shift() -> None:
    a = policy().assign(at("2026-11-24T22:00:00"))  # Tuesday night
    assert a.reason == "held-for-next-shift"
    assert a.due == datetime.fromisoformat("2026-11-25T08:30:00+08:00")
    assert a.member_id == "wang"  # Wednesday's shift
    assert policy().handling_resumes(at("2026-11-24T22:00:00").received_at) == a.due


def test_outside_hours_to_the_standing_head() -> None:
    p = policy("standing-head")
    a = p.assign(at("2026-11-24T22:00:00"))
    assert (a.member_id, a.reason) == ("shen", "outside-hours")
    assert p.handling_resumes(at("2026-11-24T22:00:00").received_at) is None


def test_around_the_clock_never_holds() -> None:
    p = policy(hours=None)
    assert p.assign(at("2026-11-28T03:00:00")).reason == "on-duty"
    assert p.handling_resumes(at("2026-11-28T03:00:00").received_at) is None


def request(
    company: str | None = None, category: str | None = None, urgent: bool = False
) -> Intake:
    return Intake(
        "k", "web", "x", datetime.fromisoformat("2026-11-24T10:00:00+08:00"), "zh-CN",
        category=category, company=company, urgent=urgent,
    )  # fmt: skip


def test_a_paired_company_goes_to_its_member_with_the_on_duty_member_copied() -> None:
    a = policy(hours=None).assign(request(company=" 平湖嘉创精密机械有限公司 "))
    assert (a.member_id, a.reason, a.copy) == ("chen", "paired", ("zhu",))


def test_a_paired_company_outside_hours_copies_nobody_off_duty() -> None:
    """Held hours: the paired member has it; the next shift's member is not texted at night
    (their shift's summary counts it). With the standing head taking the hours, he is."""
    night = Intake("k", "web", "x", datetime.fromisoformat("2026-11-24T22:00:00+08:00"),
                   "zh-CN", company="平湖嘉创精密机械有限公司")  # fmt: skip
    held = policy().assign(night)
    assert (held.member_id, held.reason, held.copy) == ("chen", "paired", ())
    head = policy("standing-head").assign(night)
    assert (head.member_id, head.copy) == ("chen", ("shen",))


def named(text: str, company: str | None = None) -> Intake:
    return Intake("k", "sms", text, datetime.fromisoformat("2026-11-24T10:00:00+08:00"),
                  "zh-CN", company=company)  # fmt: skip


def test_a_paired_company_named_anywhere_in_the_request_goes_to_its_member() -> None:
    """A text has no company field: a paired name in its words is enough, as is one within
    the company field; the field, when it names a company, comes first."""
    p = policy(hours=None)
    for intake in (
        named("我是平湖嘉创精密机械有限公司的，厂区停电了"),
        named("厂区停电了", company="平湖嘉创精密机械有限公司（二厂）"),
        named("Power cut at 平湖 嘉创精密机械 有限公司, gate 2"),  # spaces do not matter
    ):
        a = p.assign(intake)
        assert (a.member_id, a.reason) == ("chen", "paired"), intake
    field_first = named("和平湖嘉创精密机械有限公司有纠纷", company="新仓智谷电子科技有限公司")
    assert p.assign(field_first).member_id == "wang"
    # A company of its own given: a paired one its words name is another's (a neighbour).
    neighbour = named("隔壁平湖嘉创精密机械有限公司噪音扰民", company="某某纺织有限公司")
    assert p.assign(neighbour).reason == "on-duty"
    for intake in (named("厂区停电了"), named("嘉创精密停电"), named("x", company="嘉创")):
        assert p.assign(intake).reason == "on-duty"  # a name in part is no name


def test_a_paired_member_on_duty_is_not_copied_to_themself() -> None:
    at = Intake("k", "web", "x", datetime.fromisoformat("2026-11-23T10:00:00+08:00"), "zh-CN",
                company="平湖嘉创精密机械有限公司")  # fmt: skip
    a = policy(hours=None).assign(at)
    assert (a.member_id, a.copy) == ("chen", ())


def test_safety_and_urgent_requests_reach_the_standing_head_at_once() -> None:
    p = policy(hours=None)
    assert p.assign(request(category="safety")).copy == ("shen",)
    assert p.assign(request(urgent=True)).copy == ("shen",)
    assert p.assign(request(category="finance")).copy == ()


def test_an_absent_paired_member_is_passed_over() -> None:
    start = datetime.fromisoformat("2026-11-24T00:00:00+08:00")
    away = Away("chen", start, start + timedelta(days=2))
    schedule = Schedule(CONFIG.duty, CONFIG.point.timezone, aways=(away,))
    a = RoutingPolicy(CONFIG, schedule).assign(request(company="平湖嘉创精密机械有限公司"))
    assert (a.member_id, a.reason) == ("zhu", "on-duty")
