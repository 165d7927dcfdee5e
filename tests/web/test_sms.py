"""POST /sms/twilio and /sms/twilio/status, signed with twilio's own RequestValidator."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import redis.asyncio as redis
from aiohttp import web
from twilio.request_validator import RequestValidator

from hotline import appkeys
from hotline.queue import keys
from hotline.service.casework import Request
from hotline.service.settings import DEMO_TWILIO_AUTH_TOKEN, Settings, Twilio
from hotline.service.store.database import Conn
from hotline.service.workflow import Action
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import Client, Clock, office_hours_config, route_all

PUBLIC = "https://hotline.example.org"  # behind a TLS-terminating proxy
PHONE = "+8613900000001"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings, public_url=PUBLIC, twilio=Twilio(ACCOUNT_SID, AUTH_TOKEN, None, None)
    )


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


def signed(path: str, params: dict[str, str], token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(PUBLIC + path, params)}


async def text(
    client: Client, body: str, sender: str = PHONE, sid: str | None = None, **extra: str
) -> Any:
    params = {
        "MessageSid": sid or new_sid(),
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": "+8657300000000",
        "Body": body,
        "NumMedia": "0",
    } | extra
    return await client.post("/sms/twilio", data=params, headers=signed("/sms/twilio", params))


async def reply_of(resp: Any) -> str | None:
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/xml"
    messages = [m.text for m in ElementTree.fromstring(await resp.text()).iter("Message")]
    assert len(messages) <= 1
    return messages[0] if messages else None


def code_in(reply: str | None) -> str:
    assert reply is not None
    return reply.split("编号 ")[1][:7] if "编号" in reply else reply.split("request ")[1][:7]


async def test_a_text_becomes_a_case_with_a_chinese_reply(
    client: Client, app: web.Application
) -> None:
    reply = await reply_of(await text(client, "园区3号门的路灯坏了"))
    assert reply is not None and "已收到您的诉求" in reply
    code = code_in(reply)
    assert f"{PUBLIC}/track/{code}" in reply and f"查询 {code}" in reply
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.channel == "sms" and case.submitter_phone == PHONE
    assert case.assignee_id == "zhu"
    messages = await app[appkeys.STORE].cases.messages(case.id)
    assert [m.body for m in messages] == ["园区3号门的路灯坏了"]


async def test_plain_english_gets_an_english_reply(client: Client) -> None:
    reply = await reply_of(await text(client, "The street light at gate 3 is broken"))
    assert reply is not None and reply.startswith("Received: request ")


async def test_same_message_sid_twice_makes_one_case(client: Client, app: web.Application) -> None:
    sid = new_sid()
    first = await reply_of(await text(client, "重复投递", sid=sid))
    second = await reply_of(await text(client, "重复投递", sid=sid))  # a retry, in sequence
    assert code_in(first) == code_in(second)
    # Twilio's retry and its fallback URL at once, from another number:
    same = await asyncio.gather(
        *(text(client, "同一条", sender="+8613900000002", sid="SM" + "a" * 32) for _ in range(5))
    )
    codes = {code_in(await reply_of(r)) for r in same}
    assert len(codes) == 1
    await route_all(app)
    assert await app[appkeys.STORE].cases.count() == 2


async def test_texts_within_the_window_join_the_open_case(
    client: Client, app: web.Application, clock: Clock
) -> None:
    code = code_in(await reply_of(await text(client, "第一条：路灯坏了")))
    follow = await reply_of(await text(client, "补充：在3号门"))
    assert follow == f"已补充到您的诉求 {code}。"
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    assert [m.body for m in await app[appkeys.STORE].cases.messages(case.id)] == [
        "第一条：路灯坏了",
        "补充：在3号门",
    ]
    # Another number starts its own case.
    other = code_in(await reply_of(await text(client, "另一家企业", sender="+8613900000002")))
    assert other != code
    # The member on duty hears about the follow-up.
    outbox = await app[appkeys.OUTBOX].for_case(case.id)
    assert [o.purpose_key.split(":")[0] for o in outbox] == ["assigned", "notice", "message"]


async def test_after_the_window_a_text_opens_a_new_case(
    client: Client, app: web.Application, clock: Clock, redis_client: redis.Redis
) -> None:
    code = code_in(await reply_of(await text(client, "第一条")))
    await route_all(app)
    await redis_client.pexpire(keys.SMS_THREAD + PHONE, 1)  # the 4-hour window runs out
    await asyncio.sleep(0.01)
    clock.now += timedelta(hours=5)
    assert code_in(await reply_of(await text(client, "过了几个小时"))) != code


async def test_a_finished_case_takes_no_follow_ups(client: Client, app: web.Application) -> None:
    code = code_in(await reply_of(await text(client, "第一条")))
    await route_all(app)
    casework, now = app[appkeys.CASEWORK], app[appkeys.CLOCK]()
    await casework.act(code, Request(Action.ACKNOWLEDGE, "zhu"), now)
    await casework.act(code, Request(Action.RESOLVE, "zhu", text="路灯已修好"), now)
    assert code_in(await reply_of(await text(client, "新问题"))) != code


async def test_status_keyword_only_for_the_submitting_number(
    client: Client, app: web.Application
) -> None:
    code = code_in(await reply_of(await text(client, "路灯坏了")))
    await route_all(app)
    for ask in (f"查询 {code}", f"查询{code.lower()}", "查询"):
        reply = await reply_of(await text(client, ask))
        assert reply is not None and code in reply and "已交代表办理" in reply, ask
    # "STATUS" is a word of any language: the answer is in the request's own (Chinese here).
    for ask in (f"STATUS {code.lower()}", f"  status:{code}  ", "STATUS"):
        reply = await reply_of(await text(client, ask))
        assert reply is not None and code in reply and "已交代表办理" in reply, ask
    stranger = await reply_of(await text(client, f"STATUS {code}", sender="+8613900000002"))
    assert stranger == f"No request {code} was made from this number."
    await route_all(app)
    assert await app[appkeys.STORE].cases.count() == 1  # asking made no case


@pytest.mark.parametrize(("word", "fragment"), [("HELP", "24-hour hotline"), ("帮助", "查看进度")])
async def test_help(client: Client, redis_client: redis.Redis, word: str, fragment: str) -> None:
    reply = await reply_of(await text(client, word))
    assert reply is not None and fragment in reply
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


@pytest.mark.parametrize(
    "word", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT",
             "REVOKE", "OPTOUT", "ＳＴＯＰ"],
)  # fmt: skip
async def test_stop_family_opts_out_and_makes_no_case(
    client: Client, app: web.Application, redis_client: redis.Redis, word: str
) -> None:
    assert await reply_of(await text(client, word)) is None
    assert await app[appkeys.OUTBOX].is_opted_out(PHONE)
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_opted_out_numbers_get_nothing_until_start(
    client: Client, app: web.Application
) -> None:
    await text(client, "任何内容", OptOutType="STOP")
    assert await app[appkeys.OUTBOX].is_opted_out(PHONE)
    # A request is still taken (they wrote to us) but nothing is sent back.
    assert await reply_of(await text(client, "我还有一个问题")) is None
    assert await reply_of(await text(client, "HELP")) is None
    await route_all(app)
    assert await app[appkeys.STORE].cases.count() == 1
    reply = await reply_of(await text(client, "START"))
    assert reply is not None and "again" in reply
    assert not await app[appkeys.OUTBOX].is_opted_out(PHONE)


async def test_a_bare_digit_rates_the_pending_case(client: Client, app: web.Application) -> None:
    code = code_in(await reply_of(await text(client, "路灯坏了")))
    await route_all(app)

    async def ask(db: Conn) -> None:
        await db.execute(
            "UPDATE cases SET status = 'resolved', rating_requested_at = updated_at"
            " WHERE code = :code",
            {"code": code},
        )

    await app[appkeys.STORE].write(ask)
    reply = await reply_of(await text(client, "４"))  # full-width digits count
    assert reply is not None and code in reply and "4" in reply
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.rating == 4
    # No rating pending any more: a second digit rates nothing and makes no case.
    assert (
        await reply_of(await text(client, "5"))
        == "本号码没有等待评价的诉求。如需反映诉求，请用文字发送。"
    )
    assert await route_all(app) == 0


async def test_mms_media_is_stored_not_fetched(client: Client, app: web.Application) -> None:
    media = {
        "NumMedia": "2",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        "MediaContentType0": "image/jpeg",
        "MediaUrl1": "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME2",
        "MediaContentType1": "image/png",
    }
    code = code_in(await reply_of(await text(client, "", sid="MM" + uuid.uuid4().hex, **media)))
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    [message] = await app[appkeys.STORE].cases.messages(case.id)
    assert message.media == [
        (media["MediaUrl0"], "image/jpeg"),
        (media["MediaUrl1"], "image/png"),
    ]


BAD = [
    ({"From": None}, "From"),
    ({"From": "not a number"}, "From"),
    ({"Body": None}, "Body"),
    ({"Body": "x" * 1601}, "Body"),
    ({"From": "+86139\x0000000001"}, "From"),  # a NUL in the Body is dropped, as others
    ({"NumMedia": "abc"}, "NumMedia"),
    ({"NumMedia": "11"}, "NumMedia"),
    ({"NumMedia": "²"}, "NumMedia"),  # "²".isdigit() is true; int("²") raises
    ({"NumMedia": "٣"}, "NumMedia"),  # an Arabic-Indic digit
    ({"NumMedia": "1", "MediaUrl0": "http://insecure.example/x"}, "MediaUrl0"),
    ({"MessageSid": "nope"}, "MessageSid"),
    ({"MessageSid": None}, "MessageSid"),
    ({"MessageSid": new_sid() + "\n"}, "MessageSid"),  # "$" would let a newline end it
]


@pytest.mark.parametrize(("change", "field"), BAD)
async def test_bad_fields_are_400_naming_the_field(
    client: Client, redis_client: redis.Redis, change: dict[str, str | None], field: str
) -> None:
    params = {"MessageSid": new_sid(), "From": PHONE, "Body": "hi", "NumMedia": "0"} | change
    form = {k: v for k, v in params.items() if v is not None}
    resp = await client.post("/sms/twilio", data=form, headers=signed("/sms/twilio", form))
    assert resp.status == 400
    assert field in (await resp.json())["errors"]
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_control_characters_in_a_text_are_dropped_not_refused(
    client: Client, app: web.Application
) -> None:
    """Twilio does not retry a refusal: a text with a stray bell, escape, NUL or bidi
    override (a phone's keyboard, a pasted message) is taken without them, and answered."""
    reply = await reply_of(await text(client, "园区\x07东门\u202e路灯\x1b坏了\x00\r\n第二行"))
    code = code_in(reply)
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.text == "园区东门路灯坏了\n第二行"


async def raw_post(client: Client, body: bytes, signature: str = "x") -> Any:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return await client.post("/sms/twilio", data=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"From=%2B8613900000001&Body=%ZZbad", "broken percent-encoding"),
        (b"From=%2B8613900000001&Body=50%", "broken percent-encoding"),
        (b"From=%2B8613900000001&Body=%FF%FE", "not valid UTF-8"),
        ("From=1&Body=中".encode(), "must be percent-encoded"),  # valid, but not escaped
        (b"From=1&Body=\xe4\xb8", "not valid UTF-8"),  # raw, and cut short
    ],
)
async def test_broken_bodies_are_400(
    client: Client, redis_client: redis.Redis, body: bytes, message: str
) -> None:
    resp = await raw_post(client, body)
    assert resp.status == 400
    assert message in (await resp.json())["errors"]["body"]
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_huge_post_is_413(client: Client, redis_client: redis.Redis) -> None:
    resp = await raw_post(client, b"Body=" + b"x" * 400_000)
    assert resp.status == 413
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_wrong_content_type_is_415(client: Client) -> None:
    resp = await client.post("/sms/twilio", json={"Body": "hi"})
    assert resp.status == 415


async def test_signatures(client: Client, redis_client: redis.Redis) -> None:
    params = {"MessageSid": new_sid(), "From": PHONE, "Body": "hi", "NumMedia": "0"}
    missing = await client.post("/sms/twilio", data=params)
    assert missing.status == 403
    assert (await missing.json())["errors"]["X-Twilio-Signature"] == "missing"
    forged = await client.post(
        "/sms/twilio", data=params, headers=signed("/sms/twilio", params, token="wrong")
    )
    assert forged.status == 403
    tampered = await client.post(
        "/sms/twilio", data=params | {"Body": "changed"}, headers=signed("/sms/twilio", params)
    )
    assert tampered.status == 403
    other_path = await client.post(
        "/sms/twilio", data=params, headers=signed("/sms/twilio/status", params)
    )
    assert other_path.status == 403
    not_ascii = await client.post(
        "/sms/twilio", data=params, headers={"X-Twilio-Signature": "签名" + "A" * 26}
    )
    assert not_ascii.status == 403
    assert (await not_ascii.json())["errors"]["X-Twilio-Signature"] == "does not match this request"
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0
    # Signed over the URL with its default port (Twilio's back end does so at times): the
    # library's check of both forms accepts it.
    params["MessageSid"] = new_sid()
    with_port = RequestValidator(AUTH_TOKEN).compute_signature(
        "https://hotline.example.org:443/sms/twilio", params
    )
    accepted = await client.post(
        "/sms/twilio", data=params, headers={"X-Twilio-Signature": with_port}
    )
    assert accepted.status == 200
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 1


async def test_status_callback(client: Client, app: web.Application, clock: Clock) -> None:
    outbox = app[appkeys.OUTBOX]
    item_id, _ = await outbox.repo.add("t:1", PHONE, "hello", clock())
    sid = new_sid()
    await outbox.settle(item_id, "queued", clock(), was="queued", sid=sid)

    async def report(status: str, **extra: str) -> int:
        form = {"MessageSid": sid, "MessageStatus": status} | extra
        path = "/sms/twilio/status"
        resp = await client.post(path, data=form, headers=signed(path, form))
        return resp.status

    assert await report("sent") == 204
    assert await report("delivered") == 204
    assert await report("sent") == 204  # late and out of order
    assert (await outbox.get(item_id)).status == "delivered"  # type: ignore[union-attr]
    # Words only we write, from a provider, settle nothing; every word of Twilio's is taken.
    first = sid
    other_id, _ = await outbox.repo.add("t:2", PHONE, "hello", clock())
    await outbox.settle(other_id, "queued", clock(), was="queued", sid=(sid := new_sid()))
    for ours in ("not-sent", "opted-out", "queued-provider"):
        assert await report(ours) == 204
        assert (await outbox.get(other_id)).status == "sent"  # type: ignore[union-attr]
    assert await report("partially_delivered") == 204
    sid = first
    assert await report("bogus status!") == 400
    assert await report("failed", ErrorCode="abc") == 400
    assert await report("failed", ErrorCode="²") == 400
    assert await report("failed", ErrorCode="9" * 40) == 400
    assert await report("failed", ErrorCode="999999999999") == 400  # past the column's int4
    assert await report("failed", ErrorCode="2147483647") == 204
    form = {"MessageSid": sid, "MessageStatus": "sent"}
    unsigned = await client.post("/sms/twilio/status", data=form)
    assert unsigned.status == 403


async def test_status_callback_names_its_outbox_row(
    client: Client, app: web.Application, clock: Clock
) -> None:
    """`?outbox=ID` (in the callback URL we give Twilio) names our row: checked, and only a
    row without a sid takes the report's."""
    outbox = app[appkeys.OUTBOX]
    item_id, _ = await outbox.repo.add("t:1", PHONE, "hello", clock())
    await outbox.settle(item_id, "sent", clock(), was="queued", sid=(first := new_sid()))

    async def report(query: str, sid: str) -> tuple[int, Any]:
        form = {"MessageSid": sid, "MessageStatus": "delivered"}
        path = "/sms/twilio/status?" + query
        resp = await client.post(path, data=form, headers=signed(path, form))
        return resp.status, (await resp.json() if resp.status != 204 else None)

    for bad in ("abc", "0", "-1", "1.0", "%C2%B2", "9" * 40, ""):
        status, body = await report(f"outbox={bad}", new_sid())
        assert status == 400 and body["errors"] == {"outbox": "not an outbox row id"}, bad
    # A row that has its sid takes no other: the report is not ours, and changes nothing.
    assert await report(f"outbox={item_id}", new_sid()) == (204, None)
    assert await report("outbox=999999", new_sid()) == (204, None)  # no such row
    item = await outbox.get(item_id)
    assert item is not None and (item.status, item.provider_sid) == ("sent", first)
    assert await report(f"outbox={item_id}", first) == (204, None)  # its own sid
    assert (await outbox.get(item_id)).status == "delivered"  # type: ignore[union-attr]


async def test_status_callback_21610_opts_out(
    client: Client, app: web.Application, clock: Clock
) -> None:
    outbox = app[appkeys.OUTBOX]
    item_id, _ = await outbox.repo.add("t:1", PHONE, "hello", clock())
    sid = new_sid()
    await outbox.settle(item_id, "queued", clock(), was="queued", sid=sid)
    form = {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": "21610"}
    path = "/sms/twilio/status"
    assert (await client.post(path, data=form, headers=signed(path, form))).status == 204
    assert await outbox.is_opted_out(PHONE)


class TestWithoutToken:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, twilio=Twilio())

    async def test_the_webhook_refuses_everything(
        self, client: Client, redis_client: redis.Redis
    ) -> None:
        params = {"MessageSid": new_sid(), "From": PHONE, "Body": "hi"}
        resp = await client.post(
            "/sms/twilio", data=params, headers=signed("/sms/twilio", params, "")
        )
        assert resp.status == 403
        assert "TWILIO_AUTH_TOKEN" in (await resp.json())["errors"]["X-Twilio-Signature"]
        assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


class TestDemo:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, twilio=Twilio(), demo=True)

    async def test_the_demo_token_is_accepted(self, client: Client) -> None:
        params = {"MessageSid": new_sid(), "From": PHONE, "Body": "demo", "NumMedia": "0"}
        headers = signed("/sms/twilio", params, DEMO_TWILIO_AUTH_TOKEN)
        resp = await client.post("/sms/twilio", data=params, headers=headers)
        assert (await reply_of(resp) or "").startswith("Received: request ")


class TestOutsideDutyHours:
    @pytest.fixture
    def config_path(self, tmp_path: Path, config_path: Path) -> Path:
        return office_hours_config(config_path, tmp_path)

    async def test_the_reply_says_when_handling_resumes(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        clock.now = datetime.fromisoformat("2026-11-27T19:00:00+08:00")  # Friday evening
        reply = await reply_of(await text(client, "周五晚上的诉求"))
        assert reply is not None
        assert reply.startswith("现在是值班时间以外，将于 2026-11-30 08:30 开始办理。已收到")
        assert "值班代表将尽快处理" not in reply  # nobody on duty takes it up before then
        code = code_in(reply)
        await route_all(app)
        events = await app[appkeys.STORE].cases.events(
            (await app[appkeys.STORE].cases.by_code(code)).id  # type: ignore[union-attr]
        )
        assert events[1].detail["reason"] == "held-for-next-shift"
        assert events[1].detail["due"] == "2026-11-30T00:30:00.000000Z"

    async def test_an_urgent_text_reaches_the_standing_head_at_once(
        self, client: Client, app: web.Application, clock: Clock
    ) -> None:
        """Saturday dawn, a fire: a text has no box to tick, its words say it is urgent. The
        standing head is texted now (not held for Monday), and the sender told where to
        call first."""
        clock.now = datetime.fromisoformat("2026-11-28T06:53:00+08:00")
        reply = await reply_of(await text(client, "紧急！3号仓库着火了，有人被困"))
        assert reply is not None and "开始办理" not in reply
        assert reply.endswith(
            "已按紧急情况即时通知常设点长。如有人身危险，请立即拨打 110（报警）、119（火警）"
            "或 120（急救）。"
        )
        code = code_in(reply)
        await route_all(app)
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None and case.urgent
        texted = [o.to_number for o in await app[appkeys.OUTBOX].for_case(case.id)]
        assert "+8613800000000" in texted  # shen, the standing head

    async def test_within_hours_nothing_is_said(self, client: Client, clock: Clock) -> None:
        clock.now = datetime.fromisoformat("2026-11-27T10:00:00+08:00")
        reply = await reply_of(await text(client, "周五上午的诉求"))
        assert reply is not None and reply.startswith("已收到")
