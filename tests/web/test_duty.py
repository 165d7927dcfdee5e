"""The duty roster in the console (heads change it), the iCalendar feed, and who is on
duty on the public form."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from icalendar import Calendar

from hotline import appkeys
from hotline.web.duty import feed_token
from tests.helpers import Client
from tests.web.console_helpers import console_token, give_password, sign_in

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def shen(client: Client, app: web.Application) -> Client:
    await give_password(app, "shen")  # the standing head
    assert (await sign_in(client, "shen")).status == 303
    return client


async def change(client: Client, **fields: str) -> Any:
    token = await console_token(client, "/console/duty")
    return await client.post("/console/duty", data={"csrf_token": token, **fields})


async def day_html(client: Client, day: str) -> str:
    page = await (await client.get(f"/console/duty?date={day}")).text()
    return page.split(f"<h2>{day} <")[1].split("</section>")[0]


async def test_week_and_month_views(shen: Client) -> None:
    week = await (await shen.get("/console/duty?date=2026-11-24")).text()
    assert "<h2>2026-11-23 <" in week and "<h2>2026-11-29 <" in week
    assert "陈代表" in await day_html(shen, "2026-11-23")
    month = await (await shen.get("/console/duty?view=month&date=2026-11-24")).text()
    assert month.count('<section class="day') == 42 and "<h2>2026-11-01 <" in month
    # Weekday headers, Monday first; each day names its weekday too (for narrow screens).
    headers = re.findall(r'<div class="weekday" aria-hidden="true">([^<]+)</div>', month)
    assert headers == ["周一", "周二", "周三", "周四", "周五", "周六", "周日"]
    assert '<h2>2026-11-01 <span class="dow">周日</span></h2>' in month


async def test_an_override_wins_and_can_be_removed(shen: Client, app: web.Application) -> None:
    resp = await change(
        shen, kind="cover", member="wang", start_date="2026-11-24", start_time="12:00",
        end_date="2026-11-24", end_time="18:00", note="朱代表外出调研",
    )  # fmt: skip
    assert resp.status == 200
    day = await day_html(shen, "2026-11-24")
    assert "王代表" in day and "替班" in day and "朱代表" in day
    policy = await app[appkeys.DUTY].policy(app[appkeys.CLOCK]())
    assert policy.schedule.on_duty(datetime.fromisoformat("2026-11-24T13:00:00+08:00")) == "wang"
    overlap = await change(
        shen, kind="cover", member="chen", start_date="2026-11-24", start_time="17:00",
        end_date="2026-11-24", end_time="19:00",
    )  # fmt: skip
    assert overlap.status == 400 and "开始：与已有的替班重叠" in await overlap.text()
    [made] = await app[appkeys.DUTY].changes(
        datetime.fromisoformat("2026-11-24T00:00:00+08:00"),
        datetime.fromisoformat("2026-11-25T00:00:00+08:00"),
    )
    assert (await change(shen, kind="remove", id=str(made.id))).status == 200
    assert "替班" not in await day_html(shen, "2026-11-24")
    rows = await app[appkeys.STORE].fetch("SELECT removed_by, created_by FROM duty_changes")
    assert (rows[0]["removed_by"], rows[0]["created_by"]) == ("shen", "shen")  # audited


async def test_a_swap_trades_two_shifts(shen: Client) -> None:
    resp = await change(
        shen, kind="swap", first_date="2026-11-26", first_time="12:00",
        second_date="2026-11-27", second_time="12:00",
    )  # fmt: skip
    assert resp.status == 200
    assert "朱代表" in await day_html(shen, "2026-11-26")  # was chen's
    assert "陈代表" in await day_html(shen, "2026-11-27")  # was zhu's
    same = await change(
        shen, kind="swap", first_date="2026-11-28", first_time="12:00",
        second_date="2026-12-01", second_time="12:00",
    )  # fmt: skip
    assert same.status == 400 and "两个班次属于同一位代表" in await same.text()


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "cover", "member": "chen", "start_date": "0001-01-01", "end_date": "2026-12-02"},
        {"kind": "away", "member": "chen", "start_date": "2026-12-01", "end_date": "9999-12-31",
         "end_time": "23:59"},
        {"kind": "swap", "first_date": "0001-01-01", "second_date": "2026-12-03"},
        {"kind": "swap", "first_date": "9999-12-31", "first_time": "23:59",
         "second_date": "2026-12-03"},
    ],
)  # fmt: skip
async def test_dates_at_the_calendar_s_ends_are_refused(
    shen: Client, fields: dict[str, str]
) -> None:
    """Years 1 and 9999 overflow once moved to UTC or to a shift's edges: 400, not 500."""
    resp = await change(shen, **fields)
    assert resp.status == 400, await resp.text()


async def test_a_swap_onto_an_override_names_the_shift_that_overlaps(shen: Client) -> None:
    await shen.get("/console/duty?lang=en")
    cover = await change(
        shen, kind="cover", member="wang", start_date="2026-12-03", start_time="10:00",
        end_date="2026-12-03", end_time="12:00",
    )  # fmt: skip
    assert cover.status == 200
    resp = await change(
        shen, kind="swap", first_date="2026-12-01", first_time="12:00",
        second_date="2026-12-03", second_time="12:00",
    )  # fmt: skip
    assert resp.status == 400 and "Second shift: overlaps an override" in await resp.text()


async def test_an_absence_is_covered_by_the_next_in_rotation(shen: Client) -> None:
    resp = await change(
        shen, kind="away", member="chen", start_date="2026-11-26", start_time="00:00",
        end_date="2026-11-27", end_time="00:00", note="病假",
    )  # fmt: skip
    assert resp.status == 200
    day = await day_html(shen, "2026-11-26")
    assert "朱代表" in day and "顶班" in day


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "cover", "member": "ghost", "start_date": "2026-11-24",
          "end_date": "2026-11-25"}, "Member: unknown member"),
        ({"kind": "cover", "member": "wang", "start_date": "2026-11-25",
          "end_date": "2026-11-24"}, "End: must be after the start"),
        ({"kind": "away", "member": "wang", "start_date": "soon",
          "end_date": "2026-11-24"}, "Start: not a date"),
        ({"kind": "remove", "id": "abc"}, "Number: not a change number"),
        ({"kind": "remove", "id": "999"}, "Number: no active change"),
        ({"kind": "party"}, "Kind of change: one of"),
        ({"kind": "cover", "member": "admin", "start_date": "2026-12-05",
          "end_date": "2026-12-06"}, "Member: 联络点管理员 has no phone"),
        ({"kind": "away", "member": "wang", "start_date": "2026-12-05", "end_date": "2026-12-06",
          "note": "病假\u202e反转\x07"}, "Note: Contains control characters"),
        ({"kind": "swap", "first_date": "bad", "second_date": "2026-12-05"},
         "First shift: not a date"),
        ({"kind": "swap", "first_date": "2026-12-05", "second_date": "2026-12-05"},
         "Second shift: pick a different shift"),
        ({"kind": "cover", "member": "wang", "start_date": "2028-06-01",
          "end_date": "2028-06-02"}, "Start: at most 400 days from today"),
        ({"kind": "swap", "first_date": "2026-12-01", "second_date": "1900-01-02"},
         "Second shift: at most 400 days from today"),
        ({"kind": "away", "member": "wang", "start_date": "20261205",
          "end_date": "2026-12-06"}, "Start: not a date"),
        ({"kind": "away", "member": "wang", "start_date": "2026-W49-1",
          "end_date": "2026-12-06"}, "Start: not a date"),
        ({"kind": "cover", "member": "wang", "start_date": "2026-12-05",
          "start_time": "08:30:00.5+05:00", "end_date": "2026-12-06"}, "Start: not a date"),
    ],
)  # fmt: skip
async def test_mistakes_are_400s_naming_the_field(
    shen: Client, fields: dict[str, str], message: str
) -> None:
    await shen.get("/console/duty?lang=en")
    resp = await change(shen, **fields)
    assert resp.status == 400
    assert message in await resp.text()


async def test_a_refused_change_keeps_its_form_filled(shen: Client) -> None:
    """The member, dates, times and note come back as sent, in the form that sent them; only
    deputies are offered (no admin), and times start at the handoff."""
    await shen.get("/console/duty?lang=en")
    resp = await change(shen, kind="cover", member="chen", start_date="2026-12-05",
                        start_time="09:00", end_date="2026-12-04", end_time="10:00",
                        note="替沈点长")  # fmt: skip
    assert resp.status == 400
    page = await resp.text()
    cover = page[page.index('data-kind="cover"') : page.index('data-kind="swap"')]
    assert '<option value="chen" selected>' in cover and 'value="admin"' not in cover
    for value in ("2026-12-05", "09:00", "2026-12-04", "10:00", "替沈点长"):
        assert f'value="{value}"' in cover, value
    away = page[page.index('data-kind="away"') :]
    assert 'value="2026-12-05"' not in away.split("</form>")[0]  # the other forms as they were
    fresh = await (await shen.get("/console/duty")).text()
    swap = fresh[fresh.index('data-kind="swap"') :].split("</form>")[0]
    assert swap.count('value="08:30"') == 2  # the demo's handoff


async def test_reps_see_the_roster_but_cannot_change_it(
    client: Client, app: web.Application
) -> None:
    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    page = await (await client.get("/console/duty")).text()
    assert "值班表" in page and 'data-kind="cover"' not in page
    resp = await change(client, kind="cover", member="zhu", start_date="2026-11-24",
                        end_date="2026-11-25")  # fmt: skip
    assert resp.status == 403


async def test_changes_need_the_csrf_token(shen: Client) -> None:
    resp = await shen.post("/console/duty", data={"kind": "remove", "id": "1"})
    assert resp.status == 403


async def test_the_ics_feed(client: Client, app: web.Application) -> None:
    token = feed_token(app[appkeys.SETTINGS].secret_key)
    assert (await client.get("/duty.ics?token=wrong")).status == 404
    assert (await client.get("/duty.ics?token=令牌")).status == 404  # not ASCII: not a 500
    assert (await client.get("/duty.ics")).status == 404
    resp = await client.get(f"/duty.ics?token={token}")
    assert resp.status == 200 and resp.content_type == "text/calendar"
    cal = Calendar.from_ical(await resp.read())
    events = list(cal.walk("VEVENT"))
    assert len(events) >= 90
    summaries = {str(e["SUMMARY"]) for e in events}
    assert {"值班：陈代表", "值班：朱代表", "值班：王代表"} <= summaries
    # Each event whole from the start of its shift, the same UID at every fetch; stamped
    # when the feed was written.
    again = Calendar.from_ical(await (await client.get(f"/duty.ics?token={token}")).read())
    assert [str(e["UID"]) for e in again.walk("VEVENT")] == [str(e["UID"]) for e in events]
    first = events[0]
    assert first.decoded("DTSTART").astimezone(SHANGHAI).strftime("%H:%M") == "08:30"
    assert first.decoded("DTSTAMP") >= app[appkeys.CLOCK]() - timedelta(seconds=5)
    mine = Calendar.from_ical(
        await (await client.get(f"/duty.ics?token={token}&member=zhu")).read()
    )
    assert {str(e["SUMMARY"]) for e in mine.walk("VEVENT")} == {"值班：朱代表"}
    assert (await client.get(f"/duty.ics?token={token}&member=ghost")).status == 404


async def test_the_public_form_names_who_is_on_duty(client: Client) -> None:
    page = await (await client.get("/submit")).text()
    assert "当前值班：朱代表" in page
    assert "下一班：王代表，2026-11-25 08:30 起" in page


async def test_the_on_duty_member_sees_a_summary_atop_the_console(
    client: Client, app: web.Application
) -> None:
    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    page = await (await client.get("/console/cases")).text()
    assert 'id="duty-banner"' in page and "您正在值班：在办诉求 0 件" in page


async def test_an_override_can_be_edited_and_its_history_kept(
    shen: Client, app: web.Application
) -> None:
    await change(
        shen, kind="cover", member="wang", start_date="2026-11-24", start_time="12:00",
        end_date="2026-11-24", end_time="18:00",
    )  # fmt: skip
    first = (await app[appkeys.STORE].fetch("SELECT id FROM duty_changes"))[0]["id"]
    resp = await change(
        shen, kind="edit", id=str(first), member="chen", start_date="2026-11-24",
        start_time="13:00", end_date="2026-11-24", end_time="19:00",
    )  # fmt: skip
    assert resp.status == 200
    day = await day_html(shen, "2026-11-24")
    assert "<time>13:00</time>–<time>19:00</time>" in day and "陈代表" in day
    assert "王代表" not in day
    rows = await app[appkeys.STORE].fetch(
        "SELECT member_id, removed_by FROM duty_changes ORDER BY id"
    )
    assert [(r["member_id"], r["removed_by"]) for r in rows] == [("wang", "shen"), ("chen", None)]
    gone = await change(shen, kind="edit", id=str(first), member="chen",
                        start_date="2026-11-24", end_date="2026-11-25")  # fmt: skip
    assert gone.status == 400 and "没有有效的调整" in await gone.text()


async def test_a_swap_can_be_edited(shen: Client, app: web.Application) -> None:
    await change(
        shen, kind="swap", first_date="2026-11-26", first_time="12:00",
        second_date="2026-11-27", second_time="12:00",
    )  # fmt: skip
    swap_id = (await app[appkeys.STORE].fetch("SELECT min(id) AS id FROM duty_changes"))[0]["id"]
    resp = await change(
        shen, kind="swap", id=str(swap_id), first_date="2026-11-26", first_time="12:00",
        second_date="2026-11-28", second_time="12:00",
    )  # fmt: skip
    assert resp.status == 200
    schedule = (await app[appkeys.DUTY].policy(app[appkeys.CLOCK]())).schedule

    def noon(day: str) -> str | None:
        return schedule.on_duty(datetime.fromisoformat(f"{day}T12:00:00+08:00"))

    assert noon("2026-11-26") == "wang"  # chen's shift, now traded with wang's
    assert noon("2026-11-27") == "zhu"  # zhu's again: the old swap is gone
    assert noon("2026-11-28") == "chen"
    rows = await app[appkeys.STORE].fetch(
        "SELECT count(*) AS n FROM duty_changes WHERE removed_by = 'shen'"
    )
    assert rows[0]["n"] == 2  # both halves of the old swap, kept as history
