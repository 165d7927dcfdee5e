"""Working cases in the console, over HTTP: the whole loop, refusals, lists, live events."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import logging
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline import appkeys
from hotline.app import create_app
from hotline.queue import keys
from hotline.service import reports
from hotline.service.caselists import PAGE
from hotline.service.cases import Intake, from_utc_text
from hotline.service.casework import Conflict, Request
from hotline.service.demo.history import made_up
from hotline.service.periods import month
from hotline.service.settings import Settings, Twilio
from hotline.service.workflow import Action
from hotline.web import auth, console
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import Client, Clock, field_named, form_fields, route_all, stored
from tests.web.console_helpers import act, give_password, sign_in

PHONE = "+8613900000009"


async def new_case(app: web.Application, key: str = "web:1", **fields: str) -> str:
    intake = Intake(
        key=key,
        channel="web",
        text=fields.pop("text", "园区3号门路灯坏了"),
        received_at=app[appkeys.CLOCK](),
        language="zh-CN",
        **fields,  # type: ignore[arg-type]
    )
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await route_all(app)
    return code


@pytest.fixture
async def zhu(client: Client, app: web.Application) -> Client:
    await give_password(app, "zhu")
    assert (await sign_in(client, "zhu")).status == 303
    return client


async def status_of(app: web.Application, code: str) -> str:
    return (await stored(app, code)).status


async def test_a_case_referred_on_tells_the_submitter_and_its_timeline_names_each_department(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    code = await new_case(app, phone=PHONE, category="finance")
    assert (await act(zhu, code, "acknowledge")).status == 303
    due = (clock.now + timedelta(days=5)).date().isoformat()
    later = (clock.now + timedelta(days=9)).date().isoformat()
    for department, when in (("budget", due), ("urban", due), ("urban", later)):
        assert (await act(zhu, code, "refer", department=department, due=when)).status == 303
    assert (await act(zhu, code, "answer", text="已安排")).status == 303
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    notices = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id) if o.to_number == PHONE]
    # Told of each department it went to; a new due date alone is not news to them.
    assert [n for n in notices if "已交办" in n] == [
        f"您的诉求 {code} 已交办预算工委。",
        f"您的诉求 {code} 已交办城建环资工委。",
    ]
    # The answer was not marked public: nothing to read on /track, so no link to it.
    assert f"您的诉求 {code} 已有部门答复，承办代表将与您联系。" in notices
    assert not any("有了答复" in n for n in notices)
    page = await (await zhu.get(f"/console/cases/{code}")).text()
    timeline = page.split('id="timeline"')[1].split("</ol>")[0]
    referrals = [item for item in timeline.split("<li") if "已交办相关部门" in item]
    assert ["预算工委" in r for r in referrals] == [True, False, False]
    assert ["城建环资工委" in r for r in referrals] == [False, True, True]
    answer = next(item for item in timeline.split("<li") if "部门答复" in item)
    assert "城建环资工委" in answer  # whose answer it is
    assert "(已收回)" not in page  # the latest referral stands
    # The referrals at a glance: each department, and how it stands. The later due date
    # for the same office, given before the first passed, is the same referral.
    table = page.split('id="referrals"')[1].split("</table>")[0]
    rows = table.split("<tr>")[2:]
    assert [("预算工委" in r, "城建环资工委" in r) for r in rows] == [(True, False), (False, True)]
    assert "已收回" in rows[0] and "按期答复" in rows[1] and f"{later} 23:59" in rows[1]
    # Referred again; another deputy follows it: the department keeps it.
    assert (await act(zhu, code, "refer", department="budget", due=later)).status == 303
    assert (await act(zhu, code, "reassign", member="chen")).status == 303
    assert await status_of(app, code) == "referred"
    page = await (await zhu.get(f"/console/cases/{code}")).text()
    assert "（已收回）" not in page
    # Withdrawn while referred: taken back, and the case page says so.
    assert (await act(zhu, code, "withdraw", text="企业已自行解决")).status == 303
    page = await (await zhu.get(f"/console/cases/{code}")).text()
    assert '预算工委 <span class="muted">（已收回）</span>' in page


async def test_the_whole_loop_to_a_rating_on_track(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    code = await new_case(app, phone=PHONE, category="finance")
    assert (await act(zhu, code, "acknowledge")).status == 303
    assert await status_of(app, code) == "acknowledged"
    due = (clock.now + timedelta(days=5)).date().isoformat()
    assert (
        await act(zhu, code, "refer", department="budget", due=due, text="请核实")
    ).status == 303
    public = {"text": "预算工委答复：可申请贴息", "public": "1"}
    assert (await act(zhu, code, "answer", **public)).status == 303
    assert (await act(zhu, code, "presidium", text="共性问题")).status == 303
    assert (await act(zhu, code, "resolve", text="已指导企业申请贴息。")).status == 303
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    assert case.status == "resolved" and case.presidium and case.department_id == "budget"
    assert case.rating_requested_at is not None and case.first_response_at is not None

    # The submitter heard about each visible step, in their language.
    outbox = await app[appkeys.OUTBOX].for_case(case.id)
    notices = [o.body for o in outbox if o.to_number == PHONE]
    assert any(n == f"您的诉求 {code} 已由朱代表承办。" for n in notices)
    assert any("已交办预算工委" in n for n in notices)
    assert any("有了答复" in n for n in notices)
    assert any("已解决：已指导企业申请贴息。" in n and "回复 1" in n for n in notices)

    # The public page shows the steps and offers the rating, once.
    client = zhu
    page = await (await client.get(f"/track/{code}")).text()
    assert "已交办相关部门" in page and 'id="rating"' in page
    assert "请核实" not in page and "共性问题" not in page  # internal detail stays inside
    # The substance: the department's public answer (and which one), and the outcome.
    answers = page.split('id="answers"')[1].split("</ul>")[0]
    assert "预算工委答复：可申请贴息" in answers and " · 预算工委<p>" in answers
    assert 'id="outcome">已指导企业申请贴息。<' in page
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    rated = await client.post(
        f"/track/{code}/rate", data={"csrf_token": token, "rating": "4"}, allow_redirects=False
    )
    assert rated.status == 303
    assert await status_of(app, code) == "closed"
    again = await client.post(f"/track/{code}/rate", data={"csrf_token": token, "rating": "5"})
    assert again.status == 409
    events = await app[appkeys.STORE].cases.events(case.id)
    assert [e.kind for e in events] == [
        "received", "assigned", "acknowledge", "refer", "answer", "presidium", "resolve", "rated",
    ]  # fmt: skip
    assert all(e.actor == "zhu" for e in events[2:7])
    assert [e.detail.get("public") for e in events if e.kind == "answer"] == [True]


async def test_an_answer_not_marked_public_stays_inside(zhu: Client, app: web.Application) -> None:
    code = await new_case(app, phone=PHONE)
    await act(zhu, code, "acknowledge")
    await act(zhu, code, "refer", department="budget", due="2026-12-01")
    assert (await act(zhu, code, "answer", text="内部答复：需再议")).status == 303
    page = await (await zhu.get(f"/track/{code}")).text()
    assert "需再议" not in page and 'id="answers"' not in page


async def test_a_low_rating_reopens_and_escalates(zhu: Client, app: web.Application) -> None:
    code = await new_case(app, phone=PHONE)
    for action, fields in (("acknowledge", {}), ("resolve", {"text": "已处理"})):
        await act(zhu, code, action, **fields)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    after = await app[appkeys.CASEWORK].rate(case, 2, app[appkeys.CLOCK](), "sms")
    assert after.status == "reopened" and after.assignee_id == "shen"  # the standing head
    events = await app[appkeys.STORE].cases.events(case.id)
    assert events[-1].detail == {
        "rating": 2, "source": "sms", "member": "zhu", "escalated_to": "shen"
    }  # fmt: skip
    assert (after.resolved_at, after.reopens, after.rating) == (None, 1, 2)
    page = await (await zhu.get(f"/console/cases/{code}")).text()
    assert "2/5" in page and "评价朱代表的办理" in page  # whose handling the rating is for
    public = await (await zhu.get(f"/track/{code}")).text()  # the submitter is told why
    assert "2 分" in public and "您的诉求正在重新办理。" in public
    # The submitter hears that it is being looked at again; the standing head and the member
    # who had it hear why (not "a new request").
    texts = await app[appkeys.OUTBOX].for_case(case.id)
    notices = [o.body for o in texts if o.to_number == PHONE]
    assert any(n.startswith(f"您的诉求 {code} 已重新办理") for n in notices)
    why = f"诉求 {code} 获评 2 分（满分 5 分），已重新办理"
    told = {o.to_number for o in texts if o.body.startswith(why)}
    assert told == {"+8613800000000", "+8613800000002"}  # shen, zhu
    assert not any(o.body.startswith("新诉求") and o.to_number == "+8613800000000" for o in texts)
    # Resolved again, it asks for a new rating, which closes the loop.
    for action, fields in (("acknowledge", {}), ("resolve", {"text": "点长再次协调"})):
        await act(zhu, code, action, **fields)
    again = await app[appkeys.STORE].cases.by_code(code)
    assert again is not None and again.rating_pending and again.resolved_at is not None
    assert again.rating == 2  # the low rating counts until the new one replaces it
    closed = await app[appkeys.CASEWORK].rate(again, 5, app[appkeys.CLOCK](), "sms")
    assert (closed.status, closed.rating, closed.reopens) == ("closed", 5, 1)
    public = await (await zhu.get(f"/track/{code}")).text()
    assert "5 分" in public and "重新办理。" not in public


async def test_an_internal_note_moves_no_public_update_time(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    """/track's "last update" and Open311's updated_datetime are what the submitter may see
    change: a note (internal) leaves them; an acknowledgement moves them."""
    code = await new_case(app, phone=PHONE)
    secret = await app[appkeys.TOKENS].create("city", "read", "shen", clock.now)

    async def public_times() -> tuple[str, str]:
        page = await (await zhu.get(f"/track/{code}")).text()
        found = re.search(r"<dt>最近更新</dt><dd>([^<]+)</dd>", page)
        assert found, page
        listed = await zhu.get(f"/open311/v2/requests/{code}.json?api_key={secret}")
        return found.group(1), (await listed.json())[0]["updated_datetime"]

    before = await public_times()
    clock.now += timedelta(hours=1)
    assert (await act(zhu, code, "note", text="内部：先联系物业")).status == 303
    assert await public_times() == before
    clock.now += timedelta(hours=1)
    assert (await act(zhu, code, "acknowledge")).status == 303
    after = await public_times()
    assert after[0] != before[0] and after[1] != before[1]
    assert after[1].startswith("2026-11-24T13:")  # the acknowledgement's, in point time
    # A case loaded without its log (a point's records from before) goes by its own time.
    [past] = made_up(app[appkeys.DIRECTORY].config, 1, timedelta(days=3), clock.now, prefix="p")
    await app[appkeys.STORE].cases.load_history([past.row])
    loaded = past.row["code"]
    listed = await zhu.get(f"/open311/v2/requests/{loaded}.json?api_key={secret}")
    expected = from_utc_text(past.row["updated_at"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (await listed.json())[0]["updated_datetime"] == expected.isoformat(timespec="seconds")


async def satisfaction(app: web.Application, member: str | None = None) -> str:
    """The point's 满意率 for November 2026 (the clock's month at first), as the reports
    page shows it; with `member`, that member's own."""
    now, config = app[appkeys.CLOCK](), app[appkeys.DIRECTORY].config
    report = await reports.build(app[appkeys.STORE], config, month(2026, 11), now, member=member)
    return str(report.totals.satisfaction)


async def test_every_rating_counts_for_the_member_whose_handling_was_rated(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    """Rated 2 (reopened, handed to the standing head), resolved again and rated 5: both
    ratings count, the 2 in the row of the member who had the request then, the 5 in the
    standing head's; each member's list behind the figure shows the request."""
    code = await new_case(app, phone=PHONE)
    work, store = app[appkeys.CASEWORK], app[appkeys.STORE]
    for rating in (2, 5):
        for action, fields in (("acknowledge", {}), ("resolve", {"text": "已处理"})):
            await act(zhu, code, action, **fields)
        case = await store.cases.by_code(code)
        assert case is not None
        clock.now += timedelta(minutes=1)
        await work.rate(case, rating, clock.now, "sms")
    assert await satisfaction(app) == "1/2, 50.0%"
    config = app[appkeys.DIRECTORY].config
    report = await reports.build(store, config, month(2026, 11), clock.now)
    members = {
        key: (c["received"], c["rated"], c["satisfied"]) for key, c in report.groups["member"]
    }
    assert members == {"shen": (1, 1, 1), "zhu": (0, 1, 0)}  # the request is shen's now
    assert await satisfaction(app, "zhu") == "0/1, 0.0%"
    assert await satisfaction(app, "shen") == "1/1, 100.0%"
    # A rate's series counts both too.
    assert sum(b.counts["rated"] for b in report.rate_buckets) == 2
    # The console's lists behind zhu's figures: the request he handled.
    query = "view=all&from=2026-11-01&to=2026-11-30&member=zhu&measure="
    for measure, expected in (("rated", 1), ("satisfied", 0), ("received", 0)):
        page = await (await zhu.get(f"/console/cases?{query}{measure}")).text()
        assert (code in page) == bool(expected), measure
    # The head's report page: zhu has a row (rated 0/1), and no bar among requests per member.
    await give_password(app, "shen")
    await sign_in(zhu, "shen")
    page = await (await zhu.get("/console/reports?from=2026-11-01&to=2026-11-30")).text()
    assert "朱代表" in page and "沈点长: 1" in page and "朱代表: 0" not in page


async def test_a_rating_given_counts_until_a_later_one_replaces_it(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    """满意率 counts every rating given: a low one stays when the request, resolved again,
    closes with no new rating, and a member's reopening erases none."""
    low, high = await new_case(app, "web:low", phone=PHONE), await new_case(app, "web:high")
    work, store = app[appkeys.CASEWORK], app[appkeys.STORE]
    for code, rating in ((low, 1), (high, 5)):
        for action, fields in (("acknowledge", {}), ("resolve", {"text": "已处理"})):
            await act(zhu, code, action, **fields)
        case = await store.cases.by_code(code)
        assert case is not None
        clock.now += timedelta(minutes=1)
        await work.rate(case, rating, clock.now, "web")
    assert await satisfaction(app) == "1/2, 50.0%"
    clock.now += timedelta(minutes=1)
    for action, fields in (("acknowledge", {}), ("resolve", {"text": "再次协调"})):
        await act(zhu, low, action, **fields)  # asks again; the 1 stands meanwhile
    again = await store.cases.by_code(low)
    assert again is not None and again.rating_pending and again.rating == 1
    assert (await store.cases.rating_pending_for(PHONE)) == again
    assert await satisfaction(app) == "1/2, 50.0%"
    clock.now += timedelta(days=8)
    assert await work.close_unrated(clock.now) == 1  # no new rating came
    closed = await store.cases.by_code(low)
    assert closed is not None and (closed.status, closed.rating) == ("closed", 1)
    await work.act(high, Request(Action.REOPEN, "zhu"), clock.now)  # reopens the one rated 5
    reopened = await store.cases.by_code(high)
    assert reopened is not None and (reopened.status, reopened.rating) == ("reopened", 5)
    assert not reopened.rating_pending
    assert await satisfaction(app) == "1/2, 50.0%"


async def test_unrated_cases_close_after_the_wait_once(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    code = await new_case(app)
    await act(zhu, code, "acknowledge")
    await act(zhu, code, "resolve", text="已处理")
    work = app[appkeys.CASEWORK]
    clock.now += timedelta(days=6)
    assert await work.close_unrated(clock.now) == 0
    clock.now += timedelta(days=1, minutes=1)
    assert await work.close_unrated(clock.now) == 1
    assert await work.close_unrated(clock.now) == 0
    assert await status_of(app, code) == "closed"


async def test_overdue_referrals_remind_the_assignee_once(
    zhu: Client, app: web.Application, clock: Clock
) -> None:
    code = await new_case(app)
    await act(zhu, code, "acknowledge")
    due = (clock.now + timedelta(days=1)).date().isoformat()
    await act(zhu, code, "refer", department="urban", due=due)
    notifier = app[appkeys.NOTIFIER]
    store = app[appkeys.STORE]
    assert await notifier.referrals_overdue(store, clock.now) == 0
    clock.now += timedelta(days=3)
    assert await notifier.referrals_overdue(store, clock.now) == 1
    assert await notifier.referrals_overdue(store, clock.now) == 1  # counted, but queued once
    case = await store.cases.by_code(code)
    assert case is not None
    reminders = [o for o in await app[appkeys.OUTBOX].for_case(case.id) if "超期" in o.body]
    assert len(reminders) == 1 and reminders[0].to_number == "+8613800000002"


def action_form(page: str, action: str = "reassign") -> dict[str, str]:
    """The hidden fields of a case page's form for `action`, as the browser would send them."""
    form = page[page.index(f'data-action="{action}"') :]
    form = form[: form.index("</form>")]
    hidden = re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form)
    return dict(hidden)


async def test_an_action_from_a_page_older_than_a_reassign_is_refused(
    zhu: Client, app: web.Application
) -> None:
    """Two members open the case while it is zhu's; one hands it to chen, then the other
    (still seeing zhu) hands it to wang, or acknowledges it: 409, and chen keeps it."""
    code = await new_case(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    page = await (await zhu.get(f"/console/cases/{code}?lang=en")).text()
    seen = action_form(page)
    assert seen["seen_assignee"] == (case.assignee_id or "")
    first = await zhu.post(f"/console/cases/{code}/act", data=seen | {"member": "chen"},
                           allow_redirects=False)  # fmt: skip
    assert first.status == 303
    second = await zhu.post(f"/console/cases/{code}/act", data=seen | {"member": "wang"},
                            allow_redirects=False)  # fmt: skip
    assert second.status == 409
    assert "reassigned meanwhile" in await second.text()
    # Nor may any other action from that page act on what is now chen's case unseen.
    ack = await zhu.post(f"/console/cases/{code}/act", data=action_form(page, "acknowledge"),
                         allow_redirects=False)  # fmt: skip
    assert ack.status == 409 and "reassigned meanwhile" in await ack.text()
    after = await app[appkeys.STORE].cases.by_code(code)
    assert after is not None and after.assignee_id == "chen"
    # From the page as it is now, the reassign goes through.
    fresh = action_form(await (await zhu.get(f"/console/cases/{code}")).text())
    assert fresh["seen_assignee"] == "chen"
    resp = await zhu.post(f"/console/cases/{code}/act", data=fresh | {"member": "wang"},
                          allow_redirects=False)  # fmt: skip
    assert resp.status == 303
    final = await app[appkeys.STORE].cases.by_code(code)
    assert final is not None and final.assignee_id == "wang"
    # Handed to zhu meanwhile (a handoff as the shift began): from the page that still shows
    # wang, zhu's own action is taken: the case is theirs now.
    stale = action_form(await (await zhu.get(f"/console/cases/{code}")).text(), "acknowledge")
    handed = Request(Action.REASSIGN, "shen", member="zhu")
    await app[appkeys.CASEWORK].act(code, handed, app[appkeys.CLOCK]())
    ack = await zhu.post(f"/console/cases/{code}/act", data=stale, allow_redirects=False)
    assert ack.status == 303 and await status_of(app, code) == "acknowledged"


async def test_of_two_reassigns_at_once_one_lands_and_the_other_names_the_assignee(
    client: Client, app: web.Application, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = await new_case(app)
    casework = app[appkeys.CASEWORK]
    # Both read the case before either writes, as two requests at once can.
    read, both_read, reads = app[appkeys.STORE].cases.by_code, asyncio.Barrier(2), []

    async def read_together(code: str) -> Any:
        case = await read(code)
        reads.append(code)
        if len(reads) <= 2:  # the two first reads; later ones (after the write) go on
            await asyncio.wait_for(both_read.wait(), 5)
        return case

    monkeypatch.setattr(app[appkeys.STORE].cases, "by_code", read_together)
    results = await asyncio.gather(
        *(casework.act(code, Request(Action.REASSIGN, "shen", member=to), clock())
          for to in ("chen", "wang")),
        return_exceptions=True,
    )  # fmt: skip
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict)
    assert refused[0].field == "seen_assignee"


@pytest.mark.parametrize(
    ("action", "fields", "status", "message"),
    [
        ("resolve", {"text": "x"}, 409, "cannot resolve a case in status “Assigned to a deputy”"),
        ("answer", {"text": "x"}, 409, "cannot record an answer on a case in status"),
        ("close", {}, 409, "cannot close a case in status"),
        ("fly", {}, 400, "action"),
        ("note", {"text": "   "}, 400, "Note: required"),
        ("note", {"text": "x" * 2001}, 400, "at most 2000"),
        ("reassign", {"member": "ghost"}, 400, "member"),
        ("acknowledge", {"seen_status": "received"}, 409, "reload"),
    ],
)
async def test_refusals_name_the_problem(
    zhu: Client,
    app: web.Application,
    action: str,
    fields: dict[str, str],
    status: int,
    message: str,
) -> None:
    await zhu.get("/console/cases?lang=en")  # the messages below, in English
    code = await new_case(app)
    before = await app[appkeys.STORE].cases.events(
        (await app[appkeys.STORE].cases.by_code(code)).id  # type: ignore[union-attr]
    )
    resp = await act(zhu, code, action, **fields)
    assert resp.status == status
    assert message in await resp.text()
    after = await app[appkeys.STORE].cases.events(
        (await app[appkeys.STORE].cases.by_code(code)).id  # type: ignore[union-attr]
    )
    assert len(after) == len(before)  # nothing half-done


async def test_referral_needs_a_department_and_a_date(zhu: Client, app: web.Application) -> None:
    code = await new_case(app)
    await act(zhu, code, "acknowledge")
    refused = await act(zhu, code, "refer", due="2026-12-01")
    assert field_named("department") in await refused.text()
    bad_date = await act(
        zhu, code, "refer", department="urban", due="next week", text="请两周内答复"
    )
    assert bad_date.status == 400 and field_named("due") in await bad_date.text()
    assert (await act(zhu, code, "refer", department="budget")).status == 400


async def test_the_refer_form_offers_the_topic_s_department_first(
    zhu: Client, app: web.Application
) -> None:
    code = await new_case(app, "web:safety", category="safety")  # the demo: 城建环资工委
    await act(zhu, code, "acknowledge")
    html = await (await zhu.get(f"/console/cases/{code}")).text()
    refer = html[html.index('data-action="refer"') :].split("</form>")[0]
    assert re.findall(r'<option value="(\w+)" selected>', refer) == ["urban"]
    assert 'id="due-help">本诉求的办结时限为 ' in refer  # a due date after it is the member's call
    untopical = await new_case(app, "web:none")
    await act(zhu, untopical, "acknowledge")
    html = await (await zhu.get(f"/console/cases/{untopical}")).text()
    assert " selected>" not in html[html.index('data-action="refer"') :].split("</form>")[0]


async def test_a_refused_action_keeps_what_was_typed(zhu: Client, app: web.Application) -> None:
    """A refusal shows the case again with the message by the action's form, which keeps
    what was typed and chosen; if the case moved on and that form is gone, the text is
    shown to copy. The language switch reloads the case, not the action's address."""
    code = await new_case(app)
    await act(zhu, code, "acknowledge")
    resp = await act(zhu, code, "refer", department="urban", due="next week", text="请两周内答复")
    assert resp.status == 400
    html = await resp.text()
    refer = html[
        html.index('data-action="refer"') : html.index("</form>", html.index('data-action="refer"'))
    ]
    assert 'role="alert"' in refer and field_named("due") in refer
    assert '<option value="urban" selected>' in refer
    assert 'value="next week"' in refer and ">请两周内答复</textarea>" in refer
    assert f'href="/console/cases/{code}?lang=en"' in html
    assert await status_of(app, code) == "acknowledged"  # nothing half-done
    # A stale page: the case was resolved meanwhile, its reply form gone with it.
    await act(zhu, code, "resolve", text="已解决")
    resp = await act(zhu, code, "note", text="x" * 2001)
    assert resp.status == 400 and '<details class="card more" open>' in await resp.text()
    stale = await act(
        zhu, code, "answer", text="部门答复：已安排", public="1", seen_status="acknowledged"
    )
    assert stale.status == 409
    html = await stale.text()
    top = html[
        html.index('id="action-error"') : html.index("</div>", html.index('id="action-error"'))
    ]
    assert "部门答复：已安排" in top


async def test_a_reply_goes_by_sms_or_shows_on_track(zhu: Client, app: web.Application) -> None:
    by_sms = await new_case(app, "web:sms", phone=PHONE)
    on_page = await new_case(app, "web:page")
    await act(zhu, by_sms, "reply", text="您好，已联系相关部门。")
    await act(zhu, on_page, "reply", text="您好，请补充企业名称。")
    assert await status_of(app, by_sms) == "acknowledged"  # a reply is a first response
    case = await app[appkeys.STORE].cases.by_code(by_sms)
    assert case is not None
    sent = [
        o for o in await app[appkeys.OUTBOX].for_case(case.id) if o.purpose_key.startswith("reply:")
    ]
    assert sent[0].body == f"[{by_sms}] 您好，已联系相关部门。" and sent[0].to_number == PHONE
    page = await (await zhu.get(f"/track/{on_page}")).text()
    assert "您好，请补充企业名称。" in page
    # In the timeline a reply is one entry, saying how it reached the submitter.
    for code, how, words in ((by_sms, "短信发送", "您好，已联系相关部门。"),
                             (on_page, "已在进度页面公开", "您好，请补充企业名称。")):  # fmt: skip
        html = await (await zhu.get(f"/console/cases/{code}")).text()
        timeline = html.split('id="timeline"')[1].split("</ol>")[0]
        assert timeline.count(words) == 1, code
        reply = next(item for item in timeline.split("<li") if words in item)
        assert how in reply and "发出消息" not in timeline


async def test_a_reply_fits_one_sms_and_a_long_outcome_is_cut_to_one(
    zhu: Client, app: web.Application
) -> None:
    """Twilio refuses a message over 1,600 characters. A reply to a submitter with a phone
    goes as one text (/track does not show it): a longer one is refused, naming the limit. An
    outcome (2,000 at most) is cut, the rating request after it kept (/track shows the whole);
    one without a full stop still ends its sentence before the rating request."""
    code = await new_case(app, "web:long", phone=PHONE)
    html = await (await zhu.get(f"/console/cases/{code}")).text()
    limit = 1600 - len(f"[{code}] ")
    assert f'id="reply-text" name="text" rows="3" maxlength="{limit}"' in html
    refused = await act(zhu, code, "reply", text="很" * (limit + 1))
    assert refused.status == 400 and f"最多 {limit} 字：回复以一条短信发出" in await refused.text()
    assert (await act(zhu, code, "reply", text="很" * limit)).status == 303
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    bodies = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id)]
    assert f"[{code}] " + "很" * limit in bodies
    assert (await act(zhu, code, "resolve", text="路灯已于今晚修复" + "好" * 1980)).status == 303
    bodies = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id)]
    notice = next(b for b in bodies if "已解决" in b)  # the outcome cut, not the rating request
    assert len(notice) == 1600 and notice.endswith(
        "…请回复 1（不满意）至 5（非常满意）评价办理情况。"
    )
    short = await new_case(app, "web:short", phone=PHONE)
    await act(zhu, short, "acknowledge")
    assert (await act(zhu, short, "resolve", text="路灯已于今晚修复")).status == 303
    case = await app[appkeys.STORE].cases.by_code(short)
    assert case is not None
    bodies = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id)]
    assert any("已解决：路灯已于今晚修复。请回复 1" in b for b in bodies), bodies


async def test_lists_filters_and_search(zhu: Client, app: web.Application, clock: Clock) -> None:
    mine = await new_case(app, "web:a", text="融资贷款贴息", category="finance", company="甲公司")
    clock.now = clock.now.replace(hour=1) + timedelta(days=1)  # 09:00 next day: wang's shift
    theirs = await new_case(app, "web:b", text="道路拥堵", category="circulation")
    await sign_in(zhu, "zhu")  # a day later: the session had expired

    async def codes(query: str) -> list[str]:
        page = await (await zhu.get("/console/cases?" + query)).text()
        return [c for c in (mine, theirs) if c in page]

    assert await codes("view=mine") == [mine]
    assert await codes("view=open") == [mine, theirs]
    assert await codes("view=all&category=circulation") == [theirs]
    assert await codes("view=all&q=贴息") == [mine]
    assert await codes("view=all&q=甲公司") == [mine]
    assert await codes(f"view=all&q={theirs.lower()}") == [theirs]
    assert await codes("view=all&channel=sms") == []
    clock.now += timedelta(hours=5)  # first-response targets have passed
    await sign_in(zhu, "zhu")
    assert await codes("view=overdue") == [mine, theirs]
    overdue_page = await (await zhu.get("/console/cases?view=overdue")).text()
    assert 'class="overdue"' in overdue_page


async def test_the_list_goes_page_by_page(zhu: Client, app: web.Application) -> None:
    for n in range(PAGE + 5):
        intake = Intake(key=f"web:p{n}", channel="web", text=f"诉求 {n}",
                        received_at=app[appkeys.CLOCK](), language="zh-CN")  # fmt: skip
        await app[appkeys.INTAKE].submit(intake)
    await route_all(app)
    first = await (await zhu.get("/console/cases?view=all&channel=web")).text()
    assert first.count('class="code"') == PAGE
    older = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert older and "before=" in older.group(1) and "channel=web" in older.group(1)
    second = await (await zhu.get(html.unescape(older.group(1)))).text()
    assert second.count('class="code"') == 5 and 'rel="next"' not in second
    assert "最新" in second  # the way back to the first page
    bad = await zhu.get("/console/cases?view=all&before=2026-01-01")
    assert bad.status == 400
    assert "这一页不存在" in await bad.text()


async def test_live_events_reach_the_console(zhu: Client, app: web.Application) -> None:
    resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    await asyncio.sleep(0.1)  # subscribed
    code = await new_case(app)
    deadline = asyncio.get_running_loop().time() + 3
    data = None
    while data is None and asyncio.get_running_loop().time() < deadline:
        line = (await asyncio.wait_for(resp.content.readline(), 3)).decode().strip()
        if line.startswith("data:"):
            data = json.loads(line[5:])
    assert data == {"code": code, "kind": "created"}
    resp.close()


async def _ends(resp: Any) -> None:
    """Read a live stream to its end (it must end within 5 s)."""

    async def drained() -> None:
        while await resp.content.readany():
            pass

    await asyncio.wait_for(drained(), 5)


async def test_a_live_stream_ends_with_its_session_and_is_not_opened_again(
    zhu: Client, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed out elsewhere (here: the session's key gone, as sign-out and expiry leave it):
    the open stream ends, and the browser's reconnection is refused with 401, so the page
    can say it no longer updates. Looking does not renew the session."""
    monkeypatch.setattr(console, "SESSION_CHECK", 0.1)
    resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    [key] = [k async for k in redis_client.scan_iter(keys.SESSION + "*")]
    seen = await redis_client.hget(key, "seen")
    await asyncio.sleep(0.5)  # a few looks at the session
    assert await redis_client.hget(key, "seen") == seen  # not renewed by them
    assert not resp.content.at_eof()
    await redis_client.delete(key)
    await _ends(resp)
    again = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert again.status == 401


async def test_a_live_stream_outlives_a_database_blip_in_its_session_check(
    zhu: Client, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database does not answer one look at the session (a failover): the stream goes
    on (pings, events), and a later look still ends it once the session is gone."""
    from sqlalchemy.exc import OperationalError

    monkeypatch.setattr(console, "SESSION_CHECK", 0.1)
    resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    from hotline.service.accounts import account as real

    looked = 0

    async def blip(store: Any, member_id: str) -> Any:
        nonlocal looked
        looked += 1
        if looked <= 2:
            raise OperationalError("SELECT", {}, Exception("the database system is starting up"))
        return await real(store, member_id)

    monkeypatch.setattr(auth, "account", blip)
    await asyncio.sleep(0.6)
    assert looked > 2 and not resp.content.at_eof()  # looked again after the errors
    [key] = [k async for k in redis_client.scan_iter(keys.SESSION + "*")]
    await redis_client.delete(key)
    await _ends(resp)


async def test_a_live_stream_ends_when_its_session_expires(
    zhu: Client, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hours without use (the stream's looks are not use): the session is over, and
    its stream with it, though Redis still holds the key until its own expiry."""
    monkeypatch.setattr(console, "SESSION_CHECK", 0.1)
    resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert resp.status == 200
    clock.now += auth.IDLE + timedelta(seconds=1)
    await _ends(resp)


async def test_a_batch_of_new_cases_reaches_the_console_one_event_each(
    zhu: Client, app: web.Application, redis_client: redis.Redis
) -> None:
    """The router publishes a batch's case events as one message; each open console still
    gets one event per case."""
    resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    await asyncio.sleep(0.1)  # subscribed
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.CASE_EVENTS)
    codes = []
    for i in range(3):
        intake = Intake(key=f"web:batch{i}", channel="web", text=f"路灯{i}",
                        received_at=app[appkeys.CLOCK](), language="zh-CN")  # fmt: skip
        codes.append((await app[appkeys.INTAKE].submit(intake)).code)
    assert await route_all(app) == 3
    published = []
    for _ in range(10):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            published.append(message["data"])
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert len(published) == 1  # one PUBLISH for the batch
    seen: list[dict[str, str]] = []
    while len(seen) < 3:
        line = (await asyncio.wait_for(resp.content.readline(), 3)).decode().strip()
        if line.startswith("data:"):
            seen.append(json.loads(line[5:]))
    assert seen == [{"code": code, "kind": "created"} for code in codes]
    resp.close()


async def test_live_streams_are_capped_per_member_without_using_redis_connections(
    zhu: Client, app: web.Application, redis_client: redis.Redis
) -> None:
    live = app[appkeys.LIVE]
    before: Any = await redis_client.client_list()
    streams = []
    for _ in range(live.per_member):
        resp = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
        assert resp.status == 200
        streams.append(resp)
    extra = await zhu.get("/console/events", headers={"Accept": "text/event-stream"})
    assert extra.status == 429 and extra.headers["Retry-After"] == "30"
    after: Any = await redis_client.client_list()
    assert len(after) <= len(before) + 1  # one shared subscription at most, not one per tab
    code = await new_case(app)
    for resp in streams:  # every open tab still hears about the new case
        seen = ""
        while "data:" not in seen:
            seen = (await asyncio.wait_for(resp.content.readline(), 3)).decode()
        assert json.loads(seen.split("data:", 1)[1]) == {"code": code, "kind": "created"}
        resp.close()


async def test_an_action_publishes_a_change(
    zhu: Client, app: web.Application, redis_client: redis.Redis
) -> None:
    code = await new_case(app)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(keys.CASE_EVENTS)
    await act(zhu, code, "acknowledge")
    message = None
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            break
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    assert message is not None
    assert json.loads(message["data"]) == {"code": code, "kind": "acknowledged"}


async def test_form_submissions_show_up_in_the_console(zhu: Client, app: web.Application) -> None:
    fields = await form_fields(zhu)
    resp = await zhu.post(
        "/submit", data=fields | {"text": "网页提交"}, headers={"Accept": "application/json"}
    )
    code = (await resp.json())["code"]
    await route_all(app)
    page = await (await zhu.get(f"/console/cases/{code}")).text()
    assert "网页提交" in page and "受理" in page


async def test_refusals_read_in_chinese_by_default(zhu: Client, app: web.Application) -> None:
    code = await new_case(app)
    resp = await act(zhu, code, "resolve", text="x")
    assert resp.status == 409
    assert "处于“已交代表办理”的诉求不能办结" in await resp.text()
    empty = await act(zhu, code, "note", text=" ")
    assert "备注：必填" in await empty.text()


async def test_a_withdrawn_or_rejected_request_tells_its_submitter_why(
    zhu: Client, app: web.Application
) -> None:
    """Closing the loop holds for a request not taken up too: the submitter is texted the
    reason (the console says so), and the status page shows it."""
    withdrawn = await new_case(app, "web:w", phone=PHONE)
    rejected = await new_case(app, "web:r", phone=PHONE)
    page = await (await zhu.get(f"/console/cases/{rejected}")).text()
    assert "理由（将告知提交人）" in page
    await act(zhu, withdrawn, "withdraw", text="企业来电说明问题已自行解决")
    await act(zhu, rejected, "reject", text="不属于联络点受理范围，请拨打12345")
    store, outbox = app[appkeys.STORE], app[appkeys.OUTBOX]
    for code, expected in (
        (withdrawn, f"您的诉求 {withdrawn} 已撤回：企业来电说明问题已自行解决"),
        (rejected, f"您的诉求 {rejected} 不予受理：不属于联络点受理范围，请拨打12345"),
    ):
        case = await store.cases.by_code(code)
        assert case is not None
        bodies = [o.body for o in await outbox.for_case(case.id) if o.to_number == PHONE]
        assert expected in bodies
        track = await (await zhu.get(f"/track/{code}")).text()
        assert expected.split("：", 1)[1] in track and 'id="reason"' in track
    # One rejected before the submitter was told reasons: its reason was internal, and stays so.
    older = await new_case(app, "web:old")
    case = await store.cases.by_code(older)
    assert case is not None
    when = app[appkeys.CLOCK]()
    event = ("reject", "rejected", "zhu", {"text": "内部：来电者辱骂工作人员"})
    assert await store.cases.transition(case, {"status": "rejected"}, event, when) is not None
    track = await (await zhu.get(f"/track/{older}")).text()
    assert "来电者辱骂" not in track and 'id="reason"' not in track


async def test_an_error_in_the_console_leads_back_to_it(zhu: Client, app: web.Application) -> None:
    """A refusal in the console offers the way back — to the case it was about, else the
    list — not the public form."""
    code = await new_case(app)
    resp = await act(zhu, code, "fly")  # no such action (no form of the page sends it)
    assert resp.status == 400
    page = await resp.text()
    assert f'href="/console/cases/{code}" id="back"' in page
    assert "console.css" in page  # the console around it, not the public pages
    # Its language switch goes where "back" goes: the POST's address cannot be opened.
    assert f'href="/console/cases/{code}?lang=en"' in page
    resp = await zhu.get("/console/tokens")  # heads and admins only
    assert resp.status == 403
    page = await resp.text()
    assert 'href="/console/cases" id="back"' in page and "前往诉求填报页" not in page
    public = await (await zhu.get("/nowhere")).text()
    assert "前往诉求填报页" in public and 'id="back"' not in public
    assert "没有这个页面" in public and "Not Found" not in public  # aiohttp's, in ours


async def test_only_the_member_handling_it_and_the_heads_see_who_asked(
    client: Client, app: web.Application
) -> None:
    """The public form promises a submitter's name and phone are seen only by the deputies
    handling the request: the assignee and the heads. Another member may act on it, and
    reply by text, without seeing them."""
    code = await new_case(app, name="李女士", phone=PHONE)  # zhu's, on duty
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.assignee_id == "zhu"
    seen = {}
    for member in ("zhu", "shen", "wang"):
        await give_password(app, member)
        client.session.cookie_jar.clear()
        await sign_in(client, member)
        page = await (await client.get(f"/console/cases/{code}")).text()
        seen[member] = "李女士" in page or "139 0000 0009" in page or PHONE in page
    assert seen == {"zhu": True, "shen": True, "wang": False}
    assert "仅承办代表和点长可见" in page and PHONE not in page  # wang's
    resp = await act(client, code, "reply", text="您好，已收到")  # wang replies all the same
    assert resp.status == 303
    assert any(o.to_number == PHONE for o in await app[appkeys.OUTBOX].for_case(case.id))
    page = await (await client.get(f"/console/cases/{code}")).text()
    assert PHONE not in page and "139 0000 0009" not in page and "→ 提交人" in page


async def test_the_reply_form_says_where_a_reply_will_go(
    client: Client, app: web.Application, settings: Settings, clock: Clock
) -> None:
    """By text when one can reach the submitter; else on the public status page, and the
    form says so before the member writes (an opted-out number, no SMS provider)."""
    code = await new_case(app, phone=PHONE)
    twilio = Twilio(ACCOUNT_SID, AUTH_TOKEN, "+8657300000000", "http://127.0.0.1:9")
    with_sms = dataclasses.replace(settings, twilio=twilio)
    async with TestClient(TestServer(create_app(with_sms, clock=clock))) as texting:
        await give_password(texting.app, "zhu")
        await sign_in(texting, "zhu")
        page = await (await texting.get(f"/console/cases/{code}")).text()
        assert f"将以短信发送至 {PHONE}" in page
        await texting.app[appkeys.OUTBOX].set_opt_out(PHONE, True, "keyword", clock.now)
        page = await (await texting.get(f"/console/cases/{code}")).text()
        assert "将显示在公开的进度页面：短信无法送达提交人" in page
    await give_password(app, "zhu")
    await sign_in(client, "zhu")  # the fixtures' app has no SMS provider
    page = await (await client.get(f"/console/cases/{code}")).text()
    assert "将显示在公开的进度页面：短信无法送达提交人" in page


async def test_a_live_stream_whose_tab_went_before_it_began_logs_no_error(
    zhu: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A tab closed while its request for live updates was still being checked: nothing to
    stream, and nothing for the error log (aiohttp-sse asserted on the missing socket)."""
    cookies = "; ".join(f"{c.key}={c.value}" for c in zhu.session.cookie_jar)
    host, port = zhu.server.host, zhu.server.port
    for _ in range(5):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /console/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n"
            f"Cookie: {cookies}\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()  # gone at once, while the session is looked up
        await writer.wait_closed()
    await asyncio.sleep(0.3)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert (await zhu.get("/console/cases")).status == 200  # and the server is fine
