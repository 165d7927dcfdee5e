"""Themed receptions: heads schedule them, businesses sign up on the public page (every bad
input refused by name, nothing half-stored), a calendar file, a deputy's entry of the
requests raised there, counts on the event's page, reports and lists by event, and the
texts to those signed up (confirmation, reminder the day before, cancellation)."""

from __future__ import annotations

import dataclasses
import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from icalendar import Calendar

from hotline import appkeys
from hotline.app import create_app
from hotline.service.cases import Intake
from hotline.service.settings import Settings, Twilio
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import Client, Clock, field_named, route_all
from tests.web.console_helpers import console_token, give_password, sign_in

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
PLAN: dict[str, Any] = {
    "topic": "优化营商环境主题接待",
    "details": "听取园区企业对融资、用工的意见。",
    "place": "嘉创智谷联络点二楼会议室",
    "date": "2026-11-28",
    "start": "14:00",
    "end": "16:00",
    "deputies": ["chen", "zhu"],
    "departments": ["budget"],
    "capacity": "2",
}
SIGNUP = {"company": "嘉兴恒创电子有限公司", "name": "李经理", "phone": "13900000011",
          "text": "希望协调企业用工招聘。"}  # fmt: skip


@pytest.fixture
async def shen(client: Client, app: web.Application) -> Client:
    await give_password(app, "shen")  # the standing head
    assert (await sign_in(client, "shen")).status == 303
    return client


def _form(fields: dict[str, Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for name, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append((name, one))
    return pairs


async def schedule(client: Client, **changes: Any) -> Any:
    token = await console_token(client, "/console/receptions")
    data = [*_form(PLAN | changes), ("csrf_token", token)]
    return await client.post("/console/receptions", data=data, allow_redirects=False)


async def scheduled(client: Client, **changes: Any) -> int:
    resp = await schedule(client, **changes)
    assert resp.status == 303, await resp.text()
    return int(resp.headers["Location"].rsplit("/", 1)[1])


async def public_token(client: Client, reception: int) -> str:
    page = await (await client.get(f"/receptions/{reception}")).text()
    found = _TOKEN.search(page)
    assert found, page[:300]
    return found.group(1)


async def sign_up(client: Client, reception: int, **changes: str) -> Any:
    token = await public_token(client, reception)
    data = SIGNUP | changes | {"csrf_token": token}
    return await client.post(f"/receptions/{reception}", data=data)


async def count(app: web.Application, sql: str) -> int:
    return int((await app[appkeys.STORE].fetch(sql))[0]["n"])


async def test_a_head_schedules_and_the_public_sees_it(shen: Client) -> None:
    reception = await scheduled(shen)
    page = await (await shen.get(f"/console/receptions/{reception}")).text()
    assert PLAN["topic"] in page and "陈代表、朱代表" in page and "预算工委" in page
    english = await (await shen.get(f"/receptions/{reception}?lang=en")).text()
    assert "陈代表, 朱代表" in english  # a list as English writes one
    await shen.get("/receptions?lang=zh-CN")
    assert '<dt>已报名</dt><dd id="seats">0 家（共 2 个名额）</dd>' in page  # said once
    assert "0 / 2" in (await (await shen.get("/console/receptions")).text())
    listing = await (await shen.get("/receptions")).text()
    assert PLAN["topic"] in listing and "2026-11-28 14:00" in listing and "报名中" in listing
    event = await (await shen.get(f"/receptions/{reception}")).text()
    assert "嘉创智谷联络点二楼会议室" in event and 'id="signup"' in event
    english = await (await shen.get(f"/receptions/{reception}?lang=en")).text()
    assert "Sign up" in english and "Deputies attending" in english


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"topic": ""}, "topic", "必填"),
        ({"topic": "x" * 201}, "topic", "200"),
        ({"place": "楼上\x07"}, "place", "控制字符"),
        ({"date": "2026-13-01"}, "date", "2026-05-01"),
        ({"date": "2026-11-20"}, "date", "将来"),
        ({"start": "25:00"}, "start", "09:30"),
        ({"end": "13:00"}, "end", "开始"),
        ({"deputies": ["nobody"]}, "deputies", "列表"),
        ({"deputies": []}, "deputies", "至少"),
        ({"departments": ["budget", "budget"]}, "departments", "列表"),
        ({"capacity": "0"}, "capacity", "1000"),
        ({"capacity": "１０"}, "capacity", "1000"),
        ({"capacity": ["3", "4"]}, "capacity", "重复"),
    ],
)
async def test_a_bad_plan_is_refused_field_by_field(
    shen: Client, app: web.Application, changes: dict[str, Any], field: str, says: str
) -> None:
    resp = await schedule(shen, **changes)
    page = await resp.text()
    assert resp.status == 400
    error = re.search(rf'id="{field}-error">([^<]+)<', page)
    assert error and says in error.group(1), page[page.find("alert") : page.find("alert") + 900]
    assert await count(app, "SELECT count(*) AS n FROM receptions") == 0


async def test_only_heads_schedule_change_or_cancel(client: Client, app: web.Application) -> None:
    await give_password(app, "chen")
    assert (await sign_in(client, "chen")).status == 303
    page = await (await client.get("/console/receptions")).text()
    assert 'id="plan-form"' not in page
    assert (await schedule(client)).status == 403
    assert await count(app, "SELECT count(*) AS n FROM receptions") == 0


async def test_sign_up_takes_a_place_and_texts_a_confirmation(
    shen: Client, app: web.Application
) -> None:
    reception = await scheduled(shen)
    resp = await sign_up(shen, reception)
    page = await resp.text()
    assert resp.status == 201 and 'id="signed-up"' in page
    assert "1 of 2" in (await (await shen.get(f"/receptions/{reception}?lang=en")).text())
    rows = await app[appkeys.STORE].fetch("SELECT * FROM reception_signups")
    assert [(r["company"], r["contact"], r["phone"]) for r in rows] == [
        ("嘉兴恒创电子有限公司", "李经理", "+8613900000011")
    ]
    texts = await app[appkeys.STORE].fetch("SELECT * FROM outbox")
    assert [t["purpose_key"].rsplit(":", 1)[0] for t in texts] == [
        f"reception-signup:{reception}:+8613900000011"
    ]
    assert PLAN["topic"] in texts[0]["body"] and "2026-11-28 14:00–16:00" in texts[0]["body"]
    console = await (await shen.get(f"/console/receptions/{reception}")).text()
    assert "李经理" in console and "139 0000 0011" in console


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"company": ""}, "company"),
        ({"name": " "}, "name"),
        ({"phone": ""}, "phone"),
        ({"phone": "12345"}, "phone"),
        ({"text": ""}, "text"),
        ({"text": "x" * 2001}, "text"),
        ({"company": "A\x00B"}, "company"),
        ({"name": "李\u2028经理"}, "name"),
        ({"name": "李\u202e经理"}, "name"),  # a right-to-left override
        ({"company": "\u200b\u200b"}, "company"),  # invisible only: empty
        ({"phone": "1391111abcd"}, "phone"),  # keypad letters are not digits here
    ],
)
async def test_a_bad_sign_up_is_refused_and_nothing_is_stored(
    shen: Client, app: web.Application, changes: dict[str, str], field: str
) -> None:
    reception = await scheduled(shen)
    resp = await sign_up(shen, reception, **changes)
    page = await resp.text()
    assert resp.status == 400
    # Named next to the field, or (a NUL the form reader refuses first) on the error page.
    assert re.search(rf'id="{field}-error">[^<]+<', page) or field_named(field) in page
    assert await count(app, "SELECT count(*) AS n FROM reception_signups") == 0
    assert await count(app, "SELECT signed_up AS n FROM receptions") == 0
    assert await count(app, "SELECT count(*) AS n FROM outbox") == 0


async def test_sign_up_needs_the_form_token_and_a_form(shen: Client, app: web.Application) -> None:
    reception = await scheduled(shen)
    forged = await shen.post(f"/receptions/{reception}", data=SIGNUP | {"csrf_token": "forged"})
    assert forged.status == 403 and "过期" in await forged.text()
    missing = await shen.post(f"/receptions/{reception}", data=SIGNUP)
    assert missing.status == 403
    as_json = await shen.post(f"/receptions/{reception}", json=SIGNUP)
    assert as_json.status == 415
    broken = await shen.post(
        f"/receptions/{reception}", data=b"company=%FF%FE",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert broken.status == 400
    assert (await shen.post("/receptions/999", data=SIGNUP)).status == 404
    assert (await shen.get("/receptions/0")).status == 404
    assert (await shen.get("/receptions/12345678901234567890")).status == 404
    assert (await shen.get("/receptions/abc")).status == 404
    assert await count(app, "SELECT count(*) AS n FROM reception_signups") == 0


async def test_one_place_per_phone_and_no_more_than_the_places(
    shen: Client, app: web.Application
) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    # Answered like a sign-up (the page never tells whether a number signed up), not stored,
    # and the number is not texted again.
    again = await sign_up(shen, reception, company="另一家公司")
    assert again.status == 201 and 'id="signed-up">报名成功。<' in await again.text()
    assert await count(app, "SELECT count(*) AS n FROM outbox") == 1
    assert (await sign_up(shen, reception, phone="13900000012")).status == 201
    full = await sign_up_without_form(shen, reception, phone="13900000013")
    assert full.status == 409 and "已满" in await full.text()
    assert await count(app, "SELECT count(*) AS n FROM reception_signups") == 2
    assert await count(app, "SELECT signed_up AS n FROM receptions") == 2
    assert await count(app, "SELECT count(*) AS n FROM outbox") == 2


async def test_the_sign_up_page_speaks_of_a_text_only_when_texts_can_go(
    shen: Client, settings: Settings, clock: Clock
) -> None:
    """With an SMS provider the business is told of its confirming text (and reminder);
    the fixtures' app has none, and says only that the sign-up is made (above)."""
    reception = await scheduled(shen)
    twilio = Twilio(ACCOUNT_SID, AUTH_TOKEN, "+8657300000000", "http://127.0.0.1:9")
    with_sms = dataclasses.replace(settings, twilio=twilio)
    async with TestClient(TestServer(create_app(with_sms, clock=clock))) as texting:
        page = await (await sign_up(texting, reception)).text()
        form = await (await texting.get(f"/receptions/{reception}")).text()
    assert "报名成功" in page and "确认短信" in page
    assert "用于报名确认" in form or "提醒短信" in form
    # Without one, the phone field promises no text either.
    form = await (await shen.get(f"/receptions/{reception}")).text()
    assert "便于联络点就本次活动与您联系" in form and "短信" not in form


async def test_sign_ups_from_one_address_are_limited(shen: Client, app: web.Application) -> None:
    reception = await scheduled(shen, capacity="50")
    for _ in range(5):  # refused forms do not count
        assert (await sign_up(shen, reception, phone="")).status == 400
    for n in range(20):
        assert (await sign_up(shen, reception, phone=f"139000001{n:02d}")).status == 201
    refused = await sign_up(shen, reception, phone="13900000199", company="迟到的公司")
    # The hour from the first sign-up: a busy machine takes seconds over the twenty.
    assert refused.status == 429 and 3540 <= int(refused.headers["Retry-After"]) <= 3600
    # On the event's page: why, how long to wait, and the form as it was typed.
    page = await refused.text()
    assert "报名次数过多" in page and "请约 60 分钟后再试" in page, page
    assert 'value="迟到的公司"' in page and 'id="signup"' in page
    assert await count(app, "SELECT count(*) AS n FROM reception_signups") == 20


async def test_a_held_or_started_event_is_not_changed(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen)
    clock.now = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)  # under way
    assert (await sign_in(shen, "shen")).status == 303
    token = await console_token(shen, f"/console/receptions/{reception}")
    for data in (
        [*_form(PLAN | {"date": "2026-12-05"}), ("csrf_token", token)],
        [("action", "cancel"), ("csrf_token", token)],
    ):
        resp = await shen.post(f"/console/receptions/{reception}", data=data)
        page = await resp.text()
        assert resp.status == 409 and "不能再修改" in page
        assert "当前无法办理" in page and "已被他人更新" not in page  # nobody else changed it
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None and found.cancelled_at is None and found.version == 1


async def test_an_unknown_action_on_a_reception_is_refused_not_taken_for_an_edit(
    shen: Client, app: web.Application
) -> None:
    reception = await scheduled(shen)
    token = await console_token(shen, f"/console/receptions/{reception}")
    data = [*_form(PLAN | {"date": "2026-12-05"}), ("csrf_token", token), ("action", "bogus")]
    resp = await shen.post(f"/console/receptions/{reception}", data=data)
    assert resp.status == 400 and "不是可对接待活动执行的操作" in await resp.text()
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None and found.version == 1  # unchanged


async def test_only_its_deputies_and_the_heads_enter_requests(
    client: Client, app: web.Application, clock: Clock
) -> None:
    await give_password(app, "shen")
    assert (await sign_in(client, "shen")).status == 303
    reception = await scheduled(client)  # deputies chen and zhu
    clock.now = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    for member, status in (("wang", 403), ("admin", 403), ("chen", 200), ("shen", 200)):
        await give_password(app, member)
        assert (await sign_in(client, member)).status == 303
        resp = await client.get(f"/console/receptions/{reception}/entry")
        assert resp.status == status, member
        page = await (await client.get(f"/console/receptions/{reception}")).text()
        assert ('id="enter-link"' in page) == (status == 200), member


async def test_far_future_plans_and_unknown_events_are_refused(shen: Client) -> None:
    resp = await schedule(shen, date="9999-12-31")
    assert resp.status == 400 and "两年" in await resp.text()
    assert (await shen.get("/console/cases?view=all&reception=404")).status == 400


async def test_the_calendar_file_follows_changes(shen: Client) -> None:
    reception = await scheduled(shen)
    first = Calendar.from_ical(await (await shen.get(f"/receptions/{reception}.ics")).read())
    token = await console_token(shen, f"/console/receptions/{reception}")
    data = [*_form(PLAN | {"start": "15:00"}), ("csrf_token", token)]
    assert (await shen.post(f"/console/receptions/{reception}", data=data)).status == 200
    second = Calendar.from_ical(await (await shen.get(f"/receptions/{reception}.ics")).read())
    before, after = first.walk("VEVENT")[0], second.walk("VEVENT")[0]
    assert str(before["uid"]) == str(after["uid"])
    assert after.decoded("sequence") == before.decoded("sequence") + 1
    assert after.decoded("dtstart") == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


async def test_the_calendar_file(shen: Client) -> None:
    reception = await scheduled(shen)
    resp = await shen.get(f"/receptions/{reception}.ics")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    event = Calendar.from_ical(await resp.read()).walk("VEVENT")[0]
    assert str(event["summary"]).endswith(PLAN["topic"])
    assert event.decoded("dtstart") == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert event.decoded("dtend") == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    assert str(event["location"]) == PLAN["place"]
    assert "出席代表：陈代表、朱代表" in str(event["description"])  # no space after "："
    assert str(event["url"]).endswith(f"/receptions/{reception}")


async def test_cancelling_closes_sign_up_and_tells_those_signed_up(
    shen: Client, app: web.Application
) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    token = await console_token(shen, f"/console/receptions/{reception}")
    resp = await shen.post(
        f"/console/receptions/{reception}", data={"csrf_token": token, "action": "cancel"},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303
    purposes = [r["purpose_key"] for r in await app[appkeys.STORE].fetch("SELECT * FROM outbox")]
    assert len([p for p in purposes if p.startswith("reception-cancelled:")]) == 1
    page = await (await shen.get(f"/receptions/{reception}")).text()
    assert "已取消" in page and 'id="signup"' not in page
    closed = await sign_up_without_form(shen, reception)
    assert closed.status == 409 and "报名已截止" in await closed.text()
    event = Calendar.from_ical(await (await shen.get(f"/receptions/{reception}.ics")).read())
    assert event.walk("VEVENT")[0]["status"] == "CANCELLED"
    # Entering requests for it is refused for that reason, not for its dates.
    entry = await shen.get(f"/console/receptions/{reception}/entry")
    assert entry.status == 409 and "该接待活动已取消" in await entry.text()


async def withdraw(client: Client, reception: int, signup: str) -> Any:
    token = await console_token(client, f"/console/receptions/{reception}")
    return await client.post(
        f"/console/receptions/{reception}",
        data={"csrf_token": token, "action": "withdraw", "signup": signup},
        allow_redirects=False,
    )


async def test_a_head_withdraws_a_sign_up_its_place_is_free_and_its_contact_told(
    shen: Client, app: web.Application
) -> None:
    """The business called to say it cannot come (or the sign-up was made in another's
    name): a head takes it back from the event's console page."""
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    assert (await sign_up(shen, reception, phone="13900000012")).status == 201
    page = await (await shen.get(f"/console/receptions/{reception}")).text()
    ids = re.findall(r'<tr data-signup="([0-9]+)">', page)
    assert len(ids) == 2 and "取消该报名并短信告知" in page
    assert (await withdraw(shen, reception, ids[0])).status == 303
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None and found.signed_up == 1
    left = await app[appkeys.STORE].receptions.signups(reception)
    assert [s.phone for s in left] == ["+8613900000012"]
    texts = await app[appkeys.STORE].fetch(
        "SELECT * FROM outbox WHERE purpose_key LIKE 'reception-withdrawn:%'"
    )
    assert [t["to_number"] for t in texts] == ["+8613900000011"]
    assert PLAN["topic"] in texts[0]["body"] and "已取消报名" in texts[0]["body"]
    # Taken back once: the second time is refused, and nothing moves.
    again = await withdraw(shen, reception, ids[0])
    assert again.status == 409 and "该报名已取消" in await again.text()
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None and found.signed_up == 1
    # The place is free: the same number signs up again and is confirmed again.
    assert (await sign_up(shen, reception)).status == 201
    confirmations = await app[appkeys.STORE].fetch(
        "SELECT * FROM outbox WHERE purpose_key LIKE 'reception-signup:%' AND to_number = :n",
        {"n": "+8613900000011"},
    )
    assert len(confirmations) == 2
    # The page keeps who withdrew whom, and when; signed up again, the business is listed
    # among those signed up too.
    page = await (await shen.get(f"/console/receptions/{reception}")).text()
    kept = page.split('id="withdrawals"', 1)[1].split("</table>", 1)[0]
    assert "已取消的报名" in page and "取消时间" in kept and "操作人" in kept
    assert kept.count("<tr>") == 1 + 1  # the header, and the one withdrawn
    assert "139 0000 0011" in kept and "沈点长" in kept
    assert len(re.findall(r'<tr data-signup="([0-9]+)">', page)) == 2


async def test_a_page_without_withdrawals_has_no_list_of_them(shen: Client) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    page = await (await shen.get(f"/console/receptions/{reception}")).text()
    assert 'id="withdrawals"' not in page and "已取消的报名" not in page


async def test_withdrawing_a_sign_up_is_refused_by_name(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    (signup,) = await app[appkeys.STORE].receptions.signups(reception)
    for bad in ("", "abc", "-1", "1" * 13):
        resp = await withdraw(shen, reception, bad)
        assert resp.status == 400 and "报名编号" in await resp.text(), bad
    assert (await withdraw(shen, reception, "999999")).status == 409  # not of this event
    resp = await shen.post(f"/console/receptions/{reception}",
                           data={"action": "withdraw", "signup": str(signup.id)})  # fmt: skip
    assert resp.status == 403  # no form token
    await give_password(app, "chen")
    assert (await sign_in(shen, "chen")).status == 303  # a member, not a head
    assert (await withdraw(shen, reception, str(signup.id))).status == 403
    assert "取消该报名" not in await (await shen.get(f"/console/receptions/{reception}")).text()
    clock.now = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)  # under way
    assert (await sign_in(shen, "shen")).status == 303
    assert (await withdraw(shen, reception, str(signup.id))).status == 409
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None and found.signed_up == 1
    assert len(await app[appkeys.STORE].receptions.signups(reception)) == 1


async def sign_up_without_form(client: Client, reception: int, **changes: str) -> Any:
    """Post a sign-up with a token from another page (the event's has no form any more)."""
    page = await (await client.get("/submit")).text()
    found = _TOKEN.search(page)
    assert found
    return await client.post(
        f"/receptions/{reception}", data=SIGNUP | changes | {"csrf_token": found.group(1)}
    )


async def test_a_head_changes_the_plan_but_not_below_the_places_taken(
    shen: Client, app: web.Application
) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    assert (await sign_up(shen, reception, phone="13900000012")).status == 201
    token = await console_token(shen, f"/console/receptions/{reception}")
    data = [*_form(PLAN | {"capacity": "1"}), ("csrf_token", token)]
    lower = await shen.post(f"/console/receptions/{reception}", data=data)
    assert lower.status == 400
    data = [*_form(PLAN | {"place": "联络点一楼大厅", "capacity": "5"}), ("csrf_token", token)]
    moved = await shen.post(f"/console/receptions/{reception}", data=data, allow_redirects=False)
    assert moved.status == 303
    assert "联络点一楼大厅" in await (await shen.get(f"/receptions/{reception}")).text()


async def test_reminders_go_the_day_before_once(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen)
    assert (await sign_up(shen, reception)).status == 201
    book = app[appkeys.RECEPTIONS]
    assert await book.remind_due(clock.now) == 0  # four days before
    clock.now = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)  # 08:30 the day before: too early
    assert await book.remind_due(clock.now) == 0
    clock.now = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 the day before
    assert await book.remind_due(clock.now) == 1
    assert await book.remind_due(clock.now) == 0
    reminders = await app[appkeys.STORE].fetch(
        "SELECT * FROM outbox WHERE purpose_key LIKE 'reception:%'"
    )
    assert len(reminders) == 1 and "明天" in reminders[0]["body"]
    clock.now = datetime(2026, 11, 27, 13, 30, tzinfo=UTC)  # 21:30 the day before: too late
    late = await sign_up(shen, reception, phone="13900000012")
    assert late.status == 201 and "提醒" not in await late.text()
    assert await book.remind_due(clock.now) == 0
    assert reminders[0]["to_number"] == "+8613900000011"
    assert "/receptions/" not in reminders[0]["body"]  # no public address: no bare path


async def test_requests_raised_at_the_event_are_tagged_and_counted(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen)
    entry = f"/console/receptions/{reception}/entry"
    assert (await shen.get(entry)).status == 409  # not the event's day yet
    clock.now = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)  # 14:30, during the event
    assert (await sign_in(shen, "shen")).status == 303  # the session of four days ago ended
    for text, phone in (("园区道路积水", "13900000021"), ("用工招聘难", "")):
        token = await console_token(shen, entry)
        page = await (await shen.get(entry)).text()
        idem = re.search(r'name="idem" value="([^"]+)"', page)
        assert idem
        data = {"csrf_token": token, "idem": idem.group(1), "text": text, "phone": phone,
                "company": "嘉兴恒创电子有限公司"}  # fmt: skip
        resp = await shen.post(entry, data=data)
        assert resp.status == 201 and 'id="recorded"' in await resp.text()
    bad = await shen.post(entry, data={"csrf_token": token, "text": ""})
    assert bad.status == 400 and 'id="e-text-error"' in await bad.text()
    assert await route_all(app) == 2
    rows = await app[appkeys.STORE].fetch("SELECT * FROM cases ORDER BY id")
    assert {(r["channel"], r["taken_by"], r["reception_id"]) for r in rows} == {
        ("walk-in", "shen", reception)
    }
    public = await (await shen.get(f"/receptions/{reception}")).text()
    assert 'id="standing"' in public and "园区道路积水" not in public
    assert "共提出 2 件诉求" in public
    listing = await (await shen.get(f"/console/cases?view=all&reception={reception}")).text()
    assert listing.count('class="code"') >= 2 and "优化营商环境主题接待" in listing
    report = await (await shen.get(f"/console/reports?reception={reception}&lang=en")).text()
    assert 'id="reception-filter"' in report and "2026-11-28" in report
    assert (await shen.get("/console/reports?reception=999")).status == 400
    assert (await shen.get("/console/reports?reception=x")).status == 400
    assert (await shen.get("/console/cases?view=all&reception=x")).status == 400
    csv = await (await shen.get(f"/console/reports.csv?reception={reception}")).text()
    assert csv.count("\r\n") == 3  # the header and the two requests


async def test_the_api_filters_and_counts_by_reception(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen)
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None
    intake = Intake("walk-in:api-test", "walk-in", "融资难", found.starts_at, "zh-CN",
                    taken_by="chen", reception_id=reception)  # fmt: skip
    await app[appkeys.INTAKE].submit(intake)
    other = Intake("web:api-test", "web", "路灯不亮", found.starts_at, "zh-CN")
    await app[appkeys.INTAKE].submit(other)
    clock.now = found.ends_at
    await route_all(app)
    token = await app[appkeys.TOKENS].create("town", "read", "shen", clock())
    auth = {"Authorization": f"Bearer {token}"}
    listed = await (await shen.get(f"/api/v1/cases?reception={reception}", headers=auth)).json()
    assert [c["text"] for c in listed["items"]] == ["融资难"]
    assert listed["items"][0]["reception"] == reception
    report = await shen.get(
        f"/api/v1/reports?from=2026-11-28&to=2026-11-28&reception={reception}", headers=auth
    )
    assert (await report.json())["counts"]["received"] == 1
    for bad in ("0", "x", "1.5", "9999999999999"):
        resp = await shen.get(f"/api/v1/reports?reception={bad}", headers=auth)
        assert resp.status == 400 and "reception" in (await resp.json())["errors"]
    unknown = await shen.get("/api/v1/reports?reception=404", headers=auth)
    assert unknown.status == 400 and "reception" in (await unknown.json())["errors"]


async def test_a_moved_event_is_told_and_reminded_again(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    reception = await scheduled(shen, date="2026-11-25")
    assert (await sign_up(shen, reception)).status == 201
    book = app[appkeys.RECEPTIONS]
    clock.now = datetime(2026, 11, 24, 3, 30, tzinfo=UTC)  # 11:30 the day before
    assert await book.remind_due(clock.now) == 1
    token = await console_token(shen, f"/console/receptions/{reception}")
    data = [*_form(PLAN | {"date": "2026-11-26", "place": "一楼大厅"}), ("csrf_token", token)]
    moved = await shen.post(f"/console/receptions/{reception}", data=data, allow_redirects=False)
    assert moved.status == 303
    again = await shen.post(f"/console/receptions/{reception}", data=data, allow_redirects=False)
    assert again.status == 303  # the same change again tells no one twice
    rows = await app[appkeys.STORE].fetch("SELECT purpose_key, body FROM outbox ORDER BY id")
    changed = [r["body"] for r in rows if r["purpose_key"].startswith("reception-changed:")]
    assert len(changed) == 1 and "2026-11-26 14:00–16:00" in changed[0] and "一楼大厅" in changed[0]
    assert await book.remind_due(clock.now) == 0  # not the day before any more
    clock.now = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # 10:00 the day before the new date
    assert await book.remind_due(clock.now) == 1
    reminders = [r for r in await app[appkeys.STORE].fetch("SELECT purpose_key FROM outbox")
                 if r["purpose_key"].startswith("reception:")]  # fmt: skip
    assert len(reminders) == 2


async def test_past_receptions_page_back_through_all_of_them(
    shen: Client, app: web.Application, clock: Clock
) -> None:
    store = app[appkeys.STORE]
    made = []
    for n in range(23):  # a point's two years of events, one every month or so
        starts = clock.now - timedelta(days=30 * (n + 1))
        fields = {"topic": f"第{n}期主题接待", "details": "", "place": "联络点会议室",
                  "starts_at": starts, "ends_at": starts + timedelta(hours=2),
                  "deputies": ("chen",), "departments": (), "capacity": 10}  # fmt: skip
        made.append(await store.receptions.add(fields, "shen", clock.now))

    def listed(page: str) -> list[int]:
        past = page[page.index('id="past"') :]
        return [int(i) for i in re.findall(r'href="/(?:console/)?receptions/([0-9]+)"', past)]

    first = await (await shen.get("/receptions")).text()
    assert listed(first) == made[:20]  # the latest first
    earlier = re.search(r'href="(/receptions\?before=[0-9]+)" id="earlier"', first)
    assert earlier is not None
    second = await (await shen.get(html.unescape(earlier.group(1)))).text()
    assert listed(second) == made[20:] and 'id="earlier"' not in second
    console = await (await shen.get(f"/console/receptions?before={made[19]}")).text()
    assert listed(console) == made[20:]
    assert listed(await (await shen.get("/console/receptions")).text()) == made  # 50 a page
    resp = await shen.get("/receptions?before=abc")
    assert resp.status == 400 and "翻页位置：不是有效的接待编号" in await resp.text()
    gone = await (await shen.get("/receptions?before=999999")).text()
    assert listed(gone) == [] and "暂无" in gone


async def test_a_reception_on_a_day_off_says_so_to_the_heads(shen: Client) -> None:
    """Scheduled on a weekend (or a holiday of the point's calendar): the event's page says
    businesses may not come, while the date can still be changed; on a workday it does not."""
    saturday = await scheduled(shen)  # PLAN's 2026-11-28
    page = await (await shen.get(f"/console/receptions/{saturday}")).text()
    assert 'id="day-off"' in page and "本次接待安排在休息日（周末）" in page
    thursday = await scheduled(shen, date="2026-11-26")
    page = await (await shen.get(f"/console/receptions/{thursday}")).text()
    assert 'id="day-off"' not in page
