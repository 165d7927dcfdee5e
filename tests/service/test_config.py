"""The point config: the demo loads, and every kind of mistake is reported with its key."""

from __future__ import annotations

import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hotline.cli import main
from hotline.service.config import ConfigError, demo_config_path, normalize_phone
from hotline.service.configfile import config_warnings, load_config, parse_config
from hotline.service.duty import PACKAGE_KNOWS_UNTIL

GOOD = """
[point]
id = "p"
name = "Point"
timezone = "Asia/Shanghai"
sms_numbers = ["+8657300000000"]

[duty]
rotation = ["a", "b"]
start = "2026-11-23"
handoff = "08:30"
period = "1d"
standing_head = "h"
ack_within = "30m"

[[members]]
id = "a"
name = "A"
phone = "+8613800000001"

[[members]]
id = "b"
name = "B"
companies = ["Acme"]

[[members]]
id = "h"
name = "H"
role = "head"

[[departments]]
id = "budget"
name = "Budget"

[[categories]]
code = "finance"
name = { zh = "金融政策", en = "Financing policy" }
department = "budget"
"""


def good() -> dict[str, Any]:
    return tomllib.loads(GOOD)


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


def test_demo_config_is_the_article_point() -> None:
    config = load_config(demo_config_path())
    assert config.point.name == "新仓镇嘉创智谷人大代表联络点"
    assert {d.name for d in config.departments} == {
        "预算工委",
        "城建环资工委",
        "教科文卫工委",
        "代表选任工委",
    }
    zh = {c.names["zh"] for c in config.categories}
    for name in (
        "助企帮扶",
        "优化营商环境",
        "稳外贸",
        "畅通循环",
        "项目推进",
        "促消费",
        "除险保安",
    ):
        assert name in zh
    assert "金融政策" in zh and "其他" in zh
    assert all(c.names["en"] for c in config.categories)
    assert len(config.duty.rotation) >= 3
    assert config.member(config.duty.standing_head) is not None


def test_good_config_parses() -> None:
    config = parse_config(good())
    assert config.duty.rotation == ("a", "b")
    assert config.member("a") is not None and config.member("a").phone == "+8613800000001"  # type: ignore[union-attr]
    assert config.category("finance") is not None
    assert config.point.language == "zh-CN"


def edit(path: str, value: Any) -> dict[str, Any]:
    """good() with one value replaced; path like 'duty.handoff' or 'members.0.phone'."""
    data = good()
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("duty.rotation", ["a", "zz"], "duty.rotation[1]: unknown member 'zz'"),
        ("duty.rotation", ["a", "a"], "duty.rotation[1]: member 'a' is in the rotation twice"),
        ("duty.rotation", [], "duty.rotation: must name at least one member"),
        ("duty.handoff", "8:30am", "duty.handoff: '8:30am' is not a time of day"),
        ("duty.handoff", "25:00", "duty.handoff: '25:00' is not a time of day"),
        ("duty.period", "90m", "duty.period: '90m': a shift is a whole number of hours or days"),
        ("duty.period", "soon", "duty.period: 'soon' is not a duration"),
        ("duty.start", "23/11/2026", "duty.start: '23/11/2026' is not a date"),
        ("duty.standing_head", "ghost", "duty.standing_head: unknown member 'ghost'"),
        ("duty.ack_within", "0m", "duty.ack_within: '0m' is not a duration"),
        ("duty.holidays", "us", "duty.holidays: 'us' is not one of cn"),
        ("duty.hours", "9 to 5", "duty.hours: '9 to 5' is not 24x7 or like"),
        ("duty.hours", "daily 18:00-08:00", "duty.hours: 'daily 18:00-08:00': duty hours must end"),
        ("duty.outside_hours", "ignore", "duty.outside_hours: 'ignore' is not one of hold"),
        ("sms", {"thread_within": "soon"}, "sms.thread_within: 'soon' is not a duration"),
        ("sms", {"window": "4h"}, "sms.window: unknown key"),
        ("members.0.phone", "12345", "members[0].phone: '12345' is not a valid phone number"),
        ("members.1.id", "a", "members[1].id: duplicate member id 'a'"),
        ("members.0.id", "Bad Id", "members[0].id: 'Bad Id' must be lowercase"),
        ("members.1.phone", "+8657300000000", "members[1].phone: +8657300000000 is the hotline's"),
        ("members.0.role", "boss", "members[0].role: 'boss' is not one of rep, head, admin"),
        ("members.0.name", "", "members[0].name: must not be empty"),
        ("members.0.name", 5, "members[0].name: must be a string"),
        ("members.0.companies", ["Acme"], "members[1].companies[0]: 'Acme' is already paired"),
        ("point.timezone", "Mars/Base", "point.timezone: 'Mars/Base' is not a known time zone"),
        ("point.language", "fr", "point.language: 'fr' is not one of zh-CN, en"),
        (
            "point.sms_numbers",
            ["+8610690000000"],
            "point.sms_numbers[0]: '+8610690000000' is not a valid",
        ),
        ("point.id", DELETE, "point.id: missing"),
        ("point.colour", "red", "point.colour: unknown key"),
        ("departments.0.name", DELETE, "departments[0].name: missing"),
        ("categories.0.department", "nope", "categories[0].department: unknown department 'nope'"),
        ("categories.0.name", {"zh": "金融"}, "categories[0].name: needs a non-empty 'en' name"),
        ("categories.0.name", "金融", "categories[0].name: must be a table"),
    ],
)
def test_each_mistake_is_named(path: str, value: Any, expected: str) -> None:
    problems = problems_of(edit(path, value))
    assert any(p.startswith(expected) for p in problems), problems


def test_duty_hours_and_sms_settings() -> None:
    data = good()
    data["duty"] |= {"hours": "workdays 08:30-17:30", "outside_hours": "standing-head"}
    data["sms"] = {"thread_within": "2h"}
    config = parse_config(data)
    assert config.duty.hours is not None and config.duty.hours.days == "workdays"
    assert config.duty.outside_hours == "standing-head"
    assert config.sms.thread_within.total_seconds() == 7200
    assert parse_config(good()).duty.hours is None  # 24x7 unless told


def test_duplicate_department_and_category() -> None:
    data = good()
    data["departments"].append({"id": "budget", "name": "Again"})
    data["categories"].append({"code": "finance", "name": {"zh": "x", "en": "y"}})
    problems = problems_of(data)
    assert "departments[1].id: duplicate department id 'budget'" in problems
    assert "categories[1].code: duplicate category code 'finance'" in problems


def test_every_problem_is_reported_at_once() -> None:
    data = edit("duty.rotation", ["a", "zz"])
    data["duty"]["handoff"] = "late"
    data["members"][0]["phone"] = "nope"
    problems = problems_of(data)
    assert len(problems) == 3, problems


def test_missing_tables() -> None:
    problems = problems_of({})
    assert "point: missing table" in problems
    assert "duty: missing table" in problems


def test_members_texts_cannot_reach_are_warned_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A landline, a phone two members share, a member on duty with no phone: allowed (a
    point may have its reasons), but check-config says so."""
    data = edit("members.1.phone", "0573-85012345")
    data["members"][2]["phone"] = "+8613800000001"  # the head shares a's
    assert config_warnings(parse_config(data)) == [
        "member 'b': +8657385012345 cannot take texts (a landline?)",
        "members 'a' and 'h' share +8613800000001",
    ]
    del data["members"][1]["phone"]
    assert config_warnings(parse_config(data))[0] == (
        "member 'b' is on duty but has no phone: texts cannot reach them"
    )
    path = tmp_path / "point.toml"
    path.write_text(GOOD.replace('name = "B"', 'name = "B"\nphone = "0573-85012345"'))
    assert main(["check-config", str(path)]) == 0
    assert "warning: member 'b': +8657385012345 cannot take texts" in capsys.readouterr().out


def test_a_byte_order_mark_and_toml_s_own_dates(tmp_path: Path) -> None:
    """A file saved by a Windows editor (a byte order mark first) reads as any other; a date
    written without quotes is named, saying to quote it."""
    path = tmp_path / "point.toml"
    path.write_text("\ufeff" + GOOD, encoding="utf-8")
    assert load_config(path).point.id == "p"
    path.write_text(GOOD.replace('start = "2026-11-23"', "start = 2026-11-23"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ['duty.start: must be a string: in quotes, "2026-11-23"']


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "point.toml"
    path.write_text("[point\nid=", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith("not valid TOML")


HOLIDAYS = """
[[duty.holiday]]
date = "2027-02-06"
until = "2027-02-12"
name = "春节"

[[duty.workday]]
date = "2027-02-14"
name = "春节调休"
"""


def test_the_points_own_holidays_and_workdays() -> None:
    data = tomllib.loads(GOOD + HOLIDAYS)
    config = parse_config(data)
    days = {note.day.isoformat(): (note.off, note.name) for note in config.duty.days}
    assert len(days) == 8 and days["2027-02-08"] == (True, "春节")
    assert days["2027-02-14"] == (False, "春节调休")
    data["duty"]["holiday"] += [
        {"date": "2027-02-10", "name": "重复"},  # set twice
        {"date": "2027-03-01", "until": "2027-02-01", "name": "倒了"},
        {"date": "2027-05-01", "until": "2027-07-01", "name": "太长"},
        {"date": "2027-13-01", "name": "不是日期"},
        {"date": "2027-10-01", "name": "x" * 41},
        {"date": "2027-10-02", "name": "国庆", "color": "red"},
    ]
    assert problems_of(data) == [
        "duty.holiday[1]: 2027-02-10 is set twice (春节, 重复)",
        "duty.holiday[2].until: must be on or after date, within 31 days",
        "duty.holiday[3].until: must be on or after date, within 31 days",
        "duty.holiday[4].date: '2027-13-01' is not a date such as 2026-11-23",
        "duty.holiday[5].name: at most 40 characters",
        "duty.holiday[6].color: unknown key",
    ]


def test_handling_resumes_within_45_days() -> None:
    """Holidays back to back that leave no duty hours for over 45 days are refused: each
    text is told when handling resumes, which there must be. Around the clock, or daily
    hours, holidays take no duty hours away."""
    data = tomllib.loads(
        GOOD.replace('ack_within = "30m"', 'ack_within = "30m"\nhours = "workdays 08:30-17:30"')
    )
    data["duty"]["holiday"] = [
        {"date": "2027-01-01", "until": "2027-01-30", "name": "一"},
        {"date": "2027-01-31", "until": "2027-02-28", "name": "二"},
    ]
    assert problems_of(data) == [
        "duty.holiday: no duty hours from 2027-01-01 to 2027-02-28 (59 days):"
        " handling must resume within 45 days"
    ]
    data["duty"]["holiday"][1] = {"date": "2027-02-02", "until": "2027-02-12", "name": "二"}
    assert parse_config(data).duty.days  # a working day between: 40 days at most
    data["duty"]["hours"] = "daily 08:30-17:30"
    data["duty"]["holiday"][1] = {"date": "2027-01-31", "until": "2027-02-28", "name": "二"}
    assert parse_config(data).duty.days


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("members = 5\n", "members: must be an array of tables ([[members]])"),
        ("departments = true\n", "departments: must be an array of tables ([[departments]])"),
    ],
)
def test_a_table_of_the_wrong_shape_is_named(toml: str, expected: str) -> None:
    text = toml + GOOD.replace("[[" + expected.split(":")[0] + "]]", "[[gone]]")
    assert expected in problems_of(tomllib.loads(text))


def test_an_id_or_code_of_the_wrong_type_is_named_by_the_service_too(tmp_path: Path) -> None:
    """What check-config names, `serve` names the same way (the console's edits are laid
    over the file only once the file itself holds)."""
    from hotline.service.directory import Directory

    for path, value, expected in (
        ("members.0.id", ["a"], "members[0].id: must be a string"),
        ("categories.0.code", {"x": 1}, "categories[0].code: must be a string"),
    ):
        with pytest.raises(ConfigError) as info:
            Directory(edit(path, value), "point.toml")
        assert expected in info.value.problems


def test_check_config_warns_before_the_holiday_calendar_runs_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cn.toml"
    path.write_text(GOOD.replace('ack_within = "30m"', 'ack_within = "30m"\nholidays = "cn"'))
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    ends = PACKAGE_KNOWS_UNTIL
    if date.today() >= ends - timedelta(days=60):
        assert f"warning: China's holiday calendar is known until {ends}" in out
    else:  # a newer chinesecalendar
        assert "holiday calendar" not in out
    spring = HOLIDAYS.replace("2027", str(ends.year + 1))
    path.write_text(path.read_text() + spring)  # one festival of the next year: not it all
    assert main(["check-config", str(path)]) == 0
    if date.today() >= ends - timedelta(days=60):
        assert "holiday calendar is known until" in capsys.readouterr().out
    new_year = f'[[duty.holiday]]\ndate = "{ends.year + 1}-01-01"\nname = "元旦"\n'
    path.write_text(path.read_text() + new_year)  # the year's schedule, from its first day
    assert main(["check-config", str(path)]) == 0
    assert "holiday calendar" not in capsys.readouterr().out


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(demo_config_path())]) == 0
    assert "OK" in capsys.readouterr().out

    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('rotation = ["a", "b"]', 'rotation = ["a", "x"]'), "utf-8")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "duty.rotation[1]: unknown member 'x'" in err

    assert main(["check-config", str(tmp_path / "absent.toml")]) == 1
    assert "no such file" in capsys.readouterr().err


@given(digits=st.text(alphabet="0123456789", min_size=10, max_size=10))
@example(digits="1012345678")  # carrier prefixes phonenumbers knows for China (11xx, 12xx,
@example(digits="2012345678")  # 179xx): stripped, six digits would be left, a local-only
@example(digits="7912345678")  # length, so the number stays whole
def test_a_chinese_mobile_sender_is_taken_as_phonenumbers_would(digits: str) -> None:
    """The SMS sender's fast path (+86 1 and ten digits, returned as given) answers what
    phonenumbers answers for it: a possible number, written the same way in E.164."""
    text = "+861" + digits
    number = phonenumbers.parse(text, "CN")
    assert phonenumbers.is_possible_number(number)
    assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == text
    assert normalize_phone(text, strict=False) == text


@pytest.mark.parametrize(
    "text", ["+86１3900000001", "+86 13900000001", "+861390000000", "+8613900000001\n"]
)
def test_near_misses_of_a_chinese_mobile_go_through_phonenumbers(text: str) -> None:
    """Full-width digits, spaces, a digit short, a trailing newline: not the fast path's."""
    expected = phonenumbers.format_number(
        phonenumbers.parse(text, "CN"), phonenumbers.PhoneNumberFormat.E164
    )
    assert normalize_phone(text, strict=False) == expected
