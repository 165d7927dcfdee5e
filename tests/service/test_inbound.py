"""The SMS hotline's rules, called directly as every text-carrying channel calls them:
no HTTP, no Twilio, a real store and Redis behind the app's own wiring."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from aiohttp import web

from hotline import appkeys
from hotline.queue import keys
from hotline.service import inbound
from hotline.service import outbox as outbox_module
from hotline.service.cases import Case
from hotline.service.casework import Request
from hotline.service.inbound import InboundText
from hotline.service.keywords import (
    Keyword,
    addressed_to,
    classify,
    detect_language,
    is_urgent,
    only_code,
)
from hotline.service.links import Links
from hotline.service.outbox import Outbox
from hotline.service.workflow import Action
from tests.helpers import Client, Clock, route_all

LINKS = Links("https://hotline.example.org")
PHONE = "+8613900000001"


def sms(body: str, sender: str = PHONE) -> InboundText:
    return InboundText("SM" + uuid.uuid4().hex, sender, "+8657300000000", body, (), None)


async def texted(app: web.Application, clock: Clock, body: str, sender: str) -> Case:
    """A request made by text from `sender`, routed: its stored case."""
    await app[appkeys.TEXT_DESK].answer(sms(body, sender), clock(), LINKS)
    await route_all(app)
    case = await app[appkeys.STORE].cases.latest_from(sender)
    assert case is not None
    return case


async def resolve(app: web.Application, clock: Clock, code: str, outcome: str) -> None:
    """zhu takes the request up and resolves it: a rating is asked for."""
    casework = app[appkeys.CASEWORK]
    await casework.act(code, Request(Action.ACKNOWLEDGE, "zhu"), clock())
    await casework.act(code, Request(Action.RESOLVE, "zhu", text=outcome), clock())


@pytest.mark.parametrize(
    ("body", "opt_out_type", "expected"),
    [
        ("STOP", None, Keyword("stop")),
        (" 退订 ", None, Keyword("stop")),
        ("TD", None, Keyword("stop")),  # China's own: "回复TD退订"
        ("退订。", None, Keyword("stop")),  # punctuation around a keyword does not matter
        ("TD!", None, Keyword("stop")),
        ("Stop.", None, Keyword("stop")),
        ("帮助？", None, Keyword("help")),
        ("订阅！", None, Keyword("start")),
        ("td", None, Keyword("stop")),
        ("Ｔ", None, Keyword("stop")),
        ("取消订阅", None, Keyword("stop")),
        ("恢复订阅", None, Keyword("start")),
        ("TD 路灯坏了", None, Keyword("text")),
        ("谢谢！", None, Keyword("thanks")),
        (" 好的。", None, Keyword("thanks")),
        ("Thank you!", None, Keyword("thanks")),
        ("谢谢，3号楼的路灯又坏了", None, Keyword("text")),
        ("ｓｔｏｐ", None, Keyword("stop")),  # full-width letters count as ASCII
        ("anything", "STOP", Keyword("stop")),  # the carrier's verdict wins
        ("START", None, Keyword("start")),
        ("帮助", None, Keyword("help")),
        ("STATUS ab2-c3d4", None, Keyword("status", code="ab2-c3d4")),
        ("查询：ABCDEFG", None, Keyword("status", code="ABCDEFG")),
        ("status", None, Keyword("status")),
        ("４", None, Keyword("rating", rating=4)),
        # Ratings as people text them back; anything but a verdict after it: a text.
        ("5分", None, Keyword("rating", rating=5)),
        ("4 分。", None, Keyword("rating", rating=4)),
        ("4分，满意", None, Keyword("rating", rating=4)),
        ("五星", None, Keyword("rating", rating=5)),
        ("两分 不满意", None, Keyword("rating", rating=2)),
        ("5.", None, Keyword("rating", rating=5)),
        ("5/5 thanks", None, Keyword("rating", rating=5)),
        ("4 stars", None, Keyword("rating", rating=4)),
        ("5 - very satisfied", None, Keyword("text")),  # a dash is no punctuation we take off
        ("5, very satisfied", None, Keyword("rating", rating=5)),
        ("5分，但是路灯还是不亮", None, Keyword("text")),
        ("3号楼路灯坏了", None, Keyword("text")),
        ("5.5", None, Keyword("text")),
        ("45", None, Keyword("text")),
        ("一般", None, Keyword("text")),
        # A verdict alone, on the request's own scale; the thanks say which number it was.
        ("非常满意", None, Keyword("rating", rating=5)),
        ("五分好评", None, Keyword("rating", rating=5)),
        ("满意，谢谢", None, Keyword("rating", rating=4)),
        ("不满意！", None, Keyword("rating", rating=1)),
        ("Very good", None, Keyword("rating", rating=5)),
        ("good", None, Keyword("text")),
        # STATUS as people also write it.
        ("进度 NJF9H6J", None, Keyword("status", code="NJF9H6J")),
        ("查询编号NJF9H6J", None, Keyword("status", code="NJF9H6J")),
        ("查 NJF9H6J", None, Keyword("status", code="NJF9H6J")),
        ("查询 NJF9H6J 谢谢", None, Keyword("status", code="NJF9H6J")),
        ("Status of NJF9H6J?", None, Keyword("status", code="NJF9H6J")),
        ("进度太慢了", None, Keyword("text")),
        ("Status of the streetlight on Main Rd is bad", None, Keyword("text")),
        ("status report please", None, Keyword("text")),
        ("查询 NJF 9H6J", None, Keyword("status", code="NJF 9H6J")),
        ("查一下3号楼的路灯", None, Keyword("text")),
        # STATUS with punctuation around it, and the words people use for it.
        ("查询？", None, Keyword("status")),
        ("Status?", None, Keyword("status")),
        ("查询 ABCDEFG。", None, Keyword("status", code="ABCDEFG")),
        ("查询进度", None, Keyword("status")),
        ("STATUS #ABCDEFG", None, Keyword("status", code="ABCDEFG")),
        # A lone emoji is thanks, a lone "?" asks how: neither is a request.
        ("👍", None, Keyword("thanks")),
        ("🙏🙏", None, Keyword("thanks")),
        ("？", None, Keyword("help")),
        ("👍 路灯坏了", None, Keyword("text")),
        # Emoji said with words are taken off; alone, only thanks-like ones are thanks.
        ("谢谢🙏", None, Keyword("thanks")),
        ("好的，谢谢", None, Keyword("thanks")),
        ("Thanks 😊", None, Keyword("thanks")),
        ("👍🏻", None, Keyword("thanks")),
        ("5分👍", None, Keyword("rating", rating=5)),
        ("🔥", None, Keyword("text")),  # an alarm: a request, as it was
        ("⚠️", None, Keyword("text")),
        ("6", None, Keyword("text")),
        ("路灯坏了", None, Keyword("text")),
    ],
)
def test_classify(body: str, opt_out_type: str | None, expected: Keyword) -> None:
    assert classify(body, opt_out_type) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("路灯坏了", "zh-CN"),
        ("The street light is out", "en"),
        ("12345", "zh-CN"),
        ("", "zh-CN"),
        ("We can’t get power at our plant since this morning", "en"),  # a phone's apostrophe
        ("Thanks — the road is flooded", "en"),
        ("The café’s drain is blocked", "en"),
        ("Trucks block our gate on 嘉创路 every morning, please help us", "en"),
        ("OK，路灯还是不亮", "zh-CN"),
        ("3号楼 WiFi 坏了", "zh-CN"),
    ],
)
def test_detect_language(body: str, expected: str) -> None:
    assert detect_language(body, "zh-CN") == expected


async def test_a_text_is_queued_and_answered_with_an_absolute_link(
    client: Client, app: web.Application, clock: Clock
) -> None:
    desk = app[appkeys.TEXT_DESK]
    reply = await desk.answer(sms("厂区门口路灯坏了"), clock(), LINKS)
    assert reply is not None and "https://hotline.example.org/track/" in reply
    assert await route_all(app) == 1


async def test_status_is_only_for_the_number_that_asked(
    client: Client, app: web.Application, clock: Clock
) -> None:
    desk = app[appkeys.TEXT_DESK]
    await desk.answer(sms("厂区门口路灯坏了"), clock(), LINKS)
    await route_all(app)
    mine = await desk.answer(sms("查询"), clock(), LINKS)
    assert mine is not None and "已交代表办理" in mine
    code = mine.split("：")[0].removeprefix("诉求 ")
    assert mine.endswith(f"）。详情：https://hotline.example.org/track/{code}")  # the answers
    bare = await desk.answer(sms("查询"), clock(), Links(""))  # no public address: no link
    assert bare is not None and bare.endswith("）。")
    other = await desk.answer(sms("查询", sender="+8613900000002"), clock(), LINKS)
    assert other == "本号码还没有提交过诉求。"


async def test_status_of_a_code_just_issued_says_it_is_being_registered(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Asked before the router stored it, a code the hotline just gave is not "no such
    request" (as /track says, to anyone); a code typed at length is not said back whole."""
    desk = app[appkeys.TEXT_DESK]
    first = await desk.answer(sms("厂区门口路灯坏了"), clock(), LINKS)
    assert first is not None
    code = first.split("编号 ")[1].split("，")[0]
    for ask in (f"查询 {code}", "查询"):
        reply = await desk.answer(sms(ask), clock(), LINKS)
        assert reply == f"诉求 {code}：已收到，正在登记，请稍后再查询。", ask
    long = await desk.answer(sms("STATUS " + "A" * 1500), clock(), LINKS)
    assert long is not None and len(long) < 80 and "A" * 20 + "…" in long
    await route_all(app)
    stored = await desk.answer(sms(f"查询 {code}"), clock(), LINKS)
    assert stored is not None and "已交代表办理" in stored
    # With a stored request finished, the next one's bare STATUS is about the new one.
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    withdraw = Request(Action.WITHDRAW, "zhu", text="企业撤回")
    await app[appkeys.CASEWORK].act(code, withdraw, clock())
    second = await desk.answer(sms("3号楼漏水"), clock(), LINKS)
    assert second is not None and code not in second
    newer = second.split("编号 ")[1].split("，")[0]
    bare = await desk.answer(sms("查询"), clock(), LINKS)
    assert bare == f"诉求 {newer}：已收到，正在登记，请稍后再查询。"


@pytest.mark.parametrize(
    ("body", "urgent"),
    [
        ("紧急！3号仓库着火了，有人被困", True),
        ("燃气泄露，味道很大", True),
        ("电梯困人", True),
        ("厂房冒烟", True),
        ("Gas leaking at gate 2", True),
        ("smoke from building 3", True),
        ("我被困扰很久了，楼下夜市噪音太大", False),
        ("不紧急，路灯坏了", False),
        ("不是紧急的事情", False),
        ("Not urgent: pothole", False),
        ("水管泄漏，地面积水", False),
        ("fire hydrant leaking water", False),
        ("Fire station road has potholes", False),
        ("防火门坏了", False),
    ],
)
def test_words_of_danger_make_a_text_urgent(body: str, urgent: bool) -> None:
    assert is_urgent(body) is urgent


async def test_an_urgent_text_in_a_thread_is_a_request_of_its_own(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Not a message the standing head never hears of: its own urgent request, the link
    in the reply kept apart from the words after it."""
    desk = app[appkeys.TEXT_DESK]
    sender = "+8613900000045"
    await desk.answer(sms("楼道堆满杂物", sender), clock(), LINKS)
    reply = await desk.answer(sms("着火了，有人被困", sender), clock(), LINKS)
    assert reply is not None and "已补充" not in reply
    assert " 已按紧急情况即时通知常设点长。" in reply  # a space after the link
    assert await route_all(app) == 2
    code = reply.split("编号 ")[1].split("，")[0]  # both came at the same instant: by its code
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.urgent and case.text == "着火了，有人被困"


@pytest.mark.parametrize("typed", [True, False])
async def test_status_asked_while_the_router_stores_the_request_finds_it(
    client: Client,
    app: web.Application,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    typed: bool,
) -> None:
    """Not in the store at the first read, no longer among the unrouted codes at the next
    (stored in between): the request's status, never "no such request"."""
    desk = app[appkeys.TEXT_DESK]
    first = await desk.answer(sms("厂区门口路灯坏了"), clock(), LINKS)
    assert first is not None
    code = first.split("编号 ")[1].split("，")[0]
    intake = desk.intake
    received_at = intake.received_at

    async def stored_meanwhile(asked: str) -> str | None:
        await route_all(app)  # the router stores it between the desk's two reads
        return await received_at(asked)

    monkeypatch.setattr(intake, "received_at", stored_meanwhile)
    reply = await desk.answer(sms(f"查询 {code}" if typed else "查询"), clock(), LINKS)
    assert reply is not None and reply.startswith(f"诉求 {code}：已交代表办理"), reply


async def test_a_rating_as_people_text_it_rates_in_the_request_s_language(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """ "5分" or "4分，满意" rates the request waiting for it (no new case); thanks come in
    the request's language, whatever the rating's own text looks like."""
    desk = app[appkeys.TEXT_DESK]
    for sender, body, rating, thanks in (
        ("+8613900000031", "厂区门口路灯坏了", "4分，满意", "感谢您对诉求"),
        ("+8613900000032", "The street light at gate 3 is out", "5.", "Thank you for rating"),
    ):
        case = await texted(app, clock, body, sender)
        await resolve(app, clock, case.code, "已修好")
        reply = await desk.answer(sms(rating, sender), clock(), LINKS)
        assert reply is not None and reply.startswith(thanks), reply
        assert await route_all(app) == 0  # no case of its own
        rated = await app[appkeys.STORE].cases.by_code(case.code)
        assert rated is not None and rated.rating == (4 if sender.endswith("31") else 5)


async def test_an_answer_to_a_member_s_question_joins_the_request_asked_about(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Past the thread's window from the request's receipt, a member asks by reply; the
    submitter's answer is on that request (not a new one whose whole text is "东门")."""
    desk, casework = app[appkeys.TEXT_DESK], app[appkeys.CASEWORK]
    sender = "+8613900000041"
    case = await texted(app, clock, "厂区门口积水", sender)
    await app[appkeys.REDIS].delete(keys.SMS_THREAD + sender)  # the window has passed
    ask = Request(Action.REPLY, "zhu", text="请问是哪个门口？")
    await casework.act(case.code, ask, clock())
    reply = await desk.answer(sms("东门", sender), clock(), LINKS)
    assert reply == f"已补充到您的诉求 {case.code}。"
    assert await route_all(app) == 1  # the message, on the case
    messages = await app[appkeys.STORE].cases.messages(case.id)
    assert [m.body for m in messages][-1] == "东门"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("[NJF9H6J] 是东门", "NJF9H6J"),
        ("【njf9h6j】补充", "NJF9H6J"),
        ("（NJF 9H6J）还在", "NJF9H6J"),
        ("ＮＪＦ９Ｈ６Ｊ　补充", "NJF9H6J"),  # full width, as a Chinese input method types
        ("NJF9H6J：补充", "NJF9H6J"),
        ("njf9h6j more", "NJF9H6J"),
        ("NJF9H6J", None),  # a code alone adds nothing
        ("streets are dark", None),  # lower case and no digit: a word
        ("NJF9H6JK more", None),  # eight characters
        ("[NJF9H6I] x", None),  # I is no code letter
        ("路灯 NJF9H6J 坏了", None),  # not at the start
    ],
)
def test_a_code_a_text_begins_with(body: str, code: str | None) -> None:
    assert addressed_to(body) == code


async def test_a_text_beginning_with_a_code_adds_to_that_request(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Two open requests from one number; its thread is on the newer. A text that begins
    with the older one's code, as a member's reply to it begins, adds to the older one; a
    code of another number's request, or of a finished one, is no address."""
    desk, redis_client = app[appkeys.TEXT_DESK], app[appkeys.REDIS]
    sender, other = "+8613900000042", "+8613900000043"
    older = await texted(app, clock, "厂区门口积水", sender)
    await redis_client.delete(keys.SMS_THREAD + sender)  # the window has passed
    newer = await texted(app, clock, "路灯不亮", sender)
    theirs = await texted(app, clock, "噪音扰民", other)
    for body in (
        f"[{older.code}] 是东门",
        f"【{older.code.lower()}】还在积水",
        f"{older.code}：补充",
    ):
        reply = await desk.answer(sms(body, sender), clock(), LINKS)
        assert reply == f"已补充到您的诉求 {older.code}。", body
    assert await route_all(app) == 3
    added = [m.body for m in await app[appkeys.STORE].cases.messages(older.id)][-3:]
    assert added == [
        f"[{older.code}] 是东门",
        f"【{older.code.lower()}】还在积水",
        f"{older.code}：补充",
    ]
    # The thread is on the older one now; the newer one got nothing.
    assert len(await app[appkeys.STORE].cases.messages(newer.id)) == 1
    # Another number's code: the number's own thread takes it, never theirs.
    reply = await desk.answer(sms(f"[{theirs.code}] 我也是", sender), clock(), LINKS)
    assert reply == f"已补充到您的诉求 {older.code}。"
    # A finished request is no address: once the thread ended, a new request.
    await resolve(app, clock, older.code, "已疏通")
    reply = await desk.answer(sms(f"[{older.code}] 又堵了", sender), clock(), LINKS)
    assert reply is not None and reply.startswith("已收到") and older.code not in reply
    await route_all(app)
    assert len(await app[appkeys.STORE].cases.messages(theirs.id)) == 1


async def test_a_text_beginning_with_a_code_is_taken_while_the_store_cannot_be_read(
    client: Client, app: web.Application, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Looking the code up must not cost the text: the database down, it is queued as any
    text is (Redis has it), joining the thread it would have joined."""
    desk = app[appkeys.TEXT_DESK]
    sender = "+8613900000044"
    case = await texted(app, clock, "厂区门口积水", sender)

    async def down(code: str) -> None:
        raise OSError("connection refused")

    async def hanging(code: str) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(inbound, "LOOKUP_WAIT", 0.1)  # Twilio waits 15 s in all
    for fault in (down, hanging):
        monkeypatch.setattr(app[appkeys.STORE].cases, "by_code", fault)
        reply = await desk.answer(sms(f"[{case.code}] 是东门", sender), clock(), LINKS)
        assert reply is not None and case.code in reply
    monkeypatch.undo()
    assert await route_all(app) == 2
    bodies = [m.body for m in await app[appkeys.STORE].cases.messages(case.id)]
    assert bodies[-2:] == [f"[{case.code}] 是东门"] * 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("NJF9H6J", "NJF9H6J"),
        ("[njf9h6j]", "NJF9H6J"),
        ("【ＮＪＦ９Ｈ６Ｊ】。", "NJF9H6J"),
        ("NJF-9H6J?", "NJF9H6J"),
        ("NJF9H6J 是东门", None),  # something to add to it
        ("NJF9H6I", None),  # no code
        ("WARNING", None),  # I and N are no code letters: a word
        ("", None),
    ],
)
def test_a_text_that_is_a_code_alone(body: str, code: str | None) -> None:
    assert only_code(body) == code


async def test_a_code_alone_asks_after_the_request_and_adds_nothing(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Someone texting back just their request's code wants to know how it goes: answered
    as STATUS is, with nothing added to the request and no new request. Another number's
    code alone is a text as any other (its status is its maker's to ask)."""
    desk = app[appkeys.TEXT_DESK]
    sender, other = "+8613900000045", "+8613900000046"
    case = await texted(app, clock, "厂区门口积水", sender)
    for body in (case.code, f"【{case.code.lower()}】", f"{case.code[:3]}-{case.code[3:]}。"):
        reply = await desk.answer(sms(body, sender), clock(), LINKS)
        assert reply is not None and reply.startswith(f"诉求 {case.code}："), body
        assert "/track/" in reply
    assert await route_all(app) == 0
    assert len(await app[appkeys.STORE].cases.messages(case.id)) == 1
    reply = await desk.answer(sms(case.code, other), clock(), LINKS)
    assert reply is not None and reply.startswith("Received: request") and case.code not in reply


async def test_a_member_s_own_number_makes_no_request(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Members are texted from the hotline's number, and answer it: zhu's "我来处理" is no
    request assigned to zhu; it says where the work is done."""
    desk = app[appkeys.TEXT_DESK]
    reply = await desk.answer(sms("我来处理，明天上午去现场", "+8613800000002"), clock(), LINKS)
    assert reply == (
        "这是联络点成员的号码：从它发来的短信不会生成诉求。请在工作台办理："
        "https://hotline.example.org/console"
    )
    assert await route_all(app) == 0
    helped = await desk.answer(sms("帮助", "+8613800000002"), clock(), LINKS)
    assert helped is not None and "24小时民情直通" in helped  # HELP as for anyone


async def test_a_carrier_s_retry_gets_the_answer_the_text_got(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """Twilio sends a text again when our answer was lost: the retry of a follow-up is
    answered as a follow-up (not as a new request's receipt), that of a rating with the same
    thanks (not "no request is waiting for a rating")."""
    desk = app[appkeys.TEXT_DESK]
    sender = "+8613900000044"
    case = await texted(app, clock, "厂区门口积水", sender)
    follow_up = sms("补充：在2号仓库", sender)
    first = await desk.answer(follow_up, clock(), LINKS)
    assert first == f"已补充到您的诉求 {case.code}。"
    assert await desk.answer(follow_up, clock(), LINKS) == first
    assert await route_all(app) == 1  # one message, once
    await resolve(app, clock, case.code, "已抽水")
    rating = sms("5", sender)
    thanks = await desk.answer(rating, clock(), LINKS)
    assert thanks is not None and thanks.startswith("感谢您对诉求")
    assert await desk.answer(rating, clock(), LINKS) == thanks


async def test_a_follow_up_is_answered_in_the_request_s_language(
    client: Client, app: web.Application, clock: Clock
) -> None:
    desk = app[appkeys.TEXT_DESK]
    sender = "+8613900000043"
    first = await desk.answer(sms("厂区门口积水", sender), clock(), LINKS)
    assert first is not None
    await route_all(app)
    code = first.split("编号 ")[1].split("，")[0]
    reply = await desk.answer(sms("Photo: IMG_2041", sender), clock(), LINKS)
    assert reply == f"已补充到您的诉求 {code}。"


async def test_after_a_low_rating_the_submitter_s_next_text_is_on_the_reopened_request(
    client: Client, app: web.Application, clock: Clock
) -> None:
    desk = app[appkeys.TEXT_DESK]
    sender = "+8613900000042"
    case = await texted(app, clock, "厂区门口积水", sender)
    await resolve(app, clock, case.code, "已抽水")
    assert await app[appkeys.REDIS].get(keys.SMS_THREAD + sender) is None  # ended
    await desk.answer(sms("2", sender), clock(), LINKS)  # reopened, to the standing head
    reply = await desk.answer(sms("水还在，没人来处理", sender), clock(), LINKS)
    assert reply == f"已补充到您的诉求 {case.code}。"
    assert await route_all(app) == 1
    assert await app[appkeys.STORE].cases.latest_from(sender) == await app[
        appkeys.STORE
    ].cases.by_code(case.code)


async def test_a_picture_is_never_taken_for_a_keyword(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """A photo sent with "?", "👍" or "5" as its caption is a request with its photo (or a
    message on the number's open case), never help, thanks or a rating that drops it."""
    desk = app[appkeys.TEXT_DESK]
    photo = (
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", "image/jpeg"),
    )
    for i, caption in enumerate(("?", "👍", "5")):
        sender = f"+861390000004{i}"
        text = dataclasses.replace(sms(caption, sender), media=photo)
        reply = await desk.answer(text, clock(), LINKS)
        assert reply is not None and "编号" in reply, caption
        assert await route_all(app) == 1, caption
        case = await app[appkeys.STORE].cases.latest_from(sender)
        assert case is not None
        [message] = await app[appkeys.STORE].cases.messages(case.id)
        assert message.media == [photo[0]], caption


async def test_a_bare_digit_without_a_pending_rating_is_no_request(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """A second rating, or a digit sent by mistake, makes no case: the sender is told. In
    the number's open thread it is a message on that case (an answer: "building 5")."""
    desk = app[appkeys.TEXT_DESK]
    reply = await desk.answer(sms("3"), clock(), LINKS)
    assert reply == "本号码没有等待评价的诉求。如需反映诉求，请用文字发送。"
    assert await route_all(app) == 0
    first = await desk.answer(sms("厂区3号楼停电了，几号楼也问一下"), clock(), LINKS)
    assert first is not None and "编号" in first
    assert await route_all(app) == 1
    joined = await desk.answer(sms("5"), clock(), LINKS)
    assert joined is not None and joined.startswith("已补充到您的诉求")
    await route_all(app)
    case = await app[appkeys.STORE].cases.latest_from(PHONE)
    assert case is not None
    assert [m.body for m in await app[appkeys.STORE].cases.messages(case.id)][-1] == "5"


async def test_a_word_of_thanks_alone_is_no_request(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """ "谢谢" after a reply or a rating makes no case; in the number's open thread it is a
    message on that case, as any text is."""
    desk = app[appkeys.TEXT_DESK]
    assert (
        await desk.answer(sms("谢谢！"), clock(), LINKS)
        == "不客气。如需反映诉求，请直接用文字发送。"
    )
    assert await route_all(app) == 0
    await desk.answer(sms("厂区门口路灯坏了"), clock(), LINKS)
    assert await route_all(app) == 1
    joined = await desk.answer(sms("好的，谢谢"), clock(), LINKS)
    assert joined is not None and joined.startswith("已补充到您的诉求")


async def test_stop_answers_nothing_and_later_texts_get_no_reply(
    client: Client, app: web.Application, clock: Clock
) -> None:
    desk = app[appkeys.TEXT_DESK]
    assert await desk.answer(sms("退订"), clock(), LINKS) is None
    assert await app[appkeys.OUTBOX].is_opted_out(PHONE)
    assert await desk.answer(sms("路灯坏了"), clock(), LINKS) is None  # queued, not answered
    assert await route_all(app) == 1


async def test_the_opted_out_numbers_are_held_and_read_again_when_another_process_changes_one(
    client: Client, app: web.Application, clock: Clock
) -> None:
    # Two processes' outboxes on one store (the app's own follows on a timer of its own).
    mine, other = Outbox(app[appkeys.STORE].outbox), Outbox(app[appkeys.STORE].outbox)
    await mine.follow_opt_outs()
    assert not await mine.is_opted_out(PHONE)
    # The other takes a STOP (with or without Redis: it tells no one). This one answers from
    # the numbers it holds, with no database read per text...
    await other.set_opt_out(PHONE, True, "keyword", clock())
    assert not await mine.is_opted_out(PHONE)
    # ...until it follows the table, within seconds.
    await mine.follow_opt_outs()
    assert await mine.is_opted_out(PHONE)
    # A START and a STOP between two follows, and then the two swapped at the same moment
    # (the table holds as many numbers, as many opted out, no later change): each is seen.
    await other.set_opt_out(PHONE, False, "keyword", clock())
    await other.set_opt_out("+8613900000003", True, "keyword", clock())
    await mine.follow_opt_outs()
    assert not await mine.is_opted_out(PHONE)
    assert await mine.is_opted_out("+8613900000003")
    await other.set_opt_out(PHONE, True, "keyword", clock())
    await other.set_opt_out("+8613900000003", False, "keyword", clock())
    await mine.follow_opt_outs()
    assert await mine.is_opted_out(PHONE)
    assert not await mine.is_opted_out("+8613900000003")
    await other.set_opt_out(PHONE, False, "keyword", clock())
    # Its own change is seen at once.
    await mine.set_opt_out(PHONE, True, "keyword", clock())
    assert await mine.is_opted_out(PHONE)
    # And the webhook's desk, on the app's outbox, goes silent for the number.
    await app[appkeys.OUTBOX].follow_opt_outs()
    assert await app[appkeys.TEXT_DESK].answer(sms("路灯还是坏的"), clock(), LINKS) is None


def counting_reads(outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per read of the opted-out numbers from the database."""
    reads: list[int] = []
    read = outbox.repo.opted_out_numbers

    async def counted() -> list[str]:
        reads.append(1)
        await asyncio.sleep(0.01)  # a read takes a while: others ask meanwhile
        return await read()

    monkeypatch.setattr(outbox.repo, "opted_out_numbers", counted)
    return reads


async def test_many_asking_at_once_wait_for_one_read(
    client: Client, app: web.Application, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = Outbox(app[appkeys.STORE].outbox)
    await outbox.set_opt_out(PHONE, True, "keyword", clock())  # the list must be read again
    reads = counting_reads(outbox, monkeypatch)
    answers = await asyncio.gather(*(outbox.is_opted_out(PHONE) for _ in range(50)))
    assert all(answers) and len(reads) == 1
    assert await outbox.is_opted_out(PHONE) and len(reads) == 1  # held now


async def test_an_opt_out_landing_while_the_numbers_are_read_is_read_again(
    client: Client, app: web.Application, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = app[appkeys.OUTBOX]
    read = outbox.repo.opted_out_numbers

    async def read_then_stop() -> list[str]:
        numbers = await read()
        monkeypatch.undo()
        await outbox.set_opt_out(PHONE, True, "keyword", clock())  # lands during the read
        return numbers

    monkeypatch.setattr(outbox.repo, "opted_out_numbers", read_then_stop)
    assert not await outbox.is_opted_out(PHONE)  # the answer of the read before it
    assert await outbox.is_opted_out(PHONE)  # what that read found was not kept


async def test_the_held_numbers_are_read_again_now_and_then_even_if_the_table_looks_the_same(
    client: Client, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = Outbox(app[appkeys.STORE].outbox)
    await outbox.follow_opt_outs()
    assert not await outbox.is_opted_out(PHONE)
    reads = counting_reads(outbox, monkeypatch)
    await outbox.follow_opt_outs()  # nothing changed: the numbers held serve
    assert not await outbox.is_opted_out(PHONE) and reads == []
    monkeypatch.setattr(outbox_module, "REREAD_AFTER", 0.0)
    await outbox.follow_opt_outs()
    assert not await outbox.is_opted_out(PHONE) and len(reads) == 1
