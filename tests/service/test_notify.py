"""Members hear about their cases by SMS: router -> outbox -> sender -> (fake) Twilio."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

from hotline import appkeys
from hotline.queue import keys
from hotline.queue.sender import Sender
from hotline.service.cases import Case, Intake
from hotline.service.casework import Request
from hotline.service.delivery import Delivery
from hotline.service.notify import snippet
from hotline.service.settings import Settings, Twilio
from hotline.service.workflow import Action
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.helpers import Client, route_all


@pytest.fixture
def settings(settings: Settings, fake_twilio: tuple[FakeTwilio, str]) -> Settings:
    twilio = Twilio(ACCOUNT_SID, AUTH_TOKEN, "+8657300000000", fake_twilio[1])
    return dataclasses.replace(settings, public_url="https://hotline.example.org", twilio=twilio)


async def send_all(app: web.Application) -> None:
    delivery = Delivery(app[appkeys.OUTBOX], app[appkeys.SMS_PROVIDER], app[appkeys.CLOCK])
    sender = Sender(app[appkeys.REDIS], delivery, consumer="t")
    await sender.run_burst()


async def test_the_assignee_gets_a_text_once(
    client: Client, app: web.Application, fake_twilio: tuple[FakeTwilio, str]
) -> None:
    text = (
        "园区3号楼东侧消防通道被货车长期占用，夜间有安全隐患，"
        "请尽快协调处理，谢谢！附近还有两家企业也反映过"
    )
    intake = Intake("web:notify-test", "web", text, app[appkeys.CLOCK](), "zh-CN", "safety")
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await route_all(app)
    await route_all(app)  # a redelivery must not text twice
    await send_all(app)
    by_number = {m["to"]: m for m in fake_twilio[0].messages}
    assert len(fake_twilio[0].messages) == 2
    # A safety request: the standing head (shen) is copied at once.
    assert by_number["+8613800000000"]["body"].startswith(f"抄送：诉求 {code}（除险保安）")
    message = by_number["+8613800000002"]  # zhu, on duty at 11:00 on 2026-11-24
    body = message["body"]
    assert body.startswith(f"新诉求 {code}（除险保安）：")
    assert snippet(text) in body and len(snippet(text)) == 40
    assert body.endswith(f"https://hotline.example.org/console/cases/{code}")
    callback = URL(fake_twilio[0].requests[0]["StatusCallback"])
    assert str(callback.with_query(None)) == "https://hotline.example.org/sms/twilio/status"
    assert callback.query.keys() == {"outbox"}


async def test_a_member_handed_a_case_hears_it_was_handed_on(
    client: Client, app: web.Application
) -> None:
    """Reassigned, the case is no new request to the member who gets it."""
    intake = Intake("web:handed", "web", "路灯坏了", app[appkeys.CLOCK](), "zh-CN", None)
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await route_all(app)
    handed = Request(Action.REASSIGN, "shen", member="chen")
    after = await app[appkeys.CASEWORK].act(code, handed, app[appkeys.CLOCK]())
    texts = await app[appkeys.OUTBOX].for_case(after.id)
    to_chen = [o.body for o in texts if o.to_number == "+8613800000001"]
    assert len(to_chen) == 1 and to_chen[0].startswith(f"转交诉求 {code}（未分类）：路灯坏了")
    to_zhu = [o.body for o in texts if o.to_number == "+8613800000002"]
    assert len(to_zhu) == 1 and to_zhu[0].startswith(f"新诉求 {code}")
    # Handed back and forth, each hand-over is told (zhu had it new; chen has it again).
    for member in ("zhu", "chen"):
        back = Request(Action.REASSIGN, "shen", member=member)
        after = await app[appkeys.CASEWORK].act(code, back, app[appkeys.CLOCK]())
    texts = await app[appkeys.OUTBOX].for_case(after.id)
    told = [o.to_number for o in texts if o.body.startswith(f"转交诉求 {code}")]
    assert sorted(told) == ["+8613800000001", "+8613800000001", "+8613800000002"]


async def test_a_status_report_before_the_sends_answer_is_kept(
    client: Client, app: web.Application, fake_twilio: tuple[FakeTwilio, str]
) -> None:
    """Twilio may report a message (delivered, failed) before our send has its answer and
    stored the sid: the report finds the row by the outbox id in its URL."""
    reported: list[int] = []

    async def report_first(message: dict[str, Any], form: dict[str, str]) -> None:
        url = URL(form["StatusCallback"])
        report = {"MessageSid": message["sid"], "MessageStatus": "failed", "ErrorCode": "30003"}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(str(url), report)
        resp = await client.post(
            url.path_qs, data=report, headers={"X-Twilio-Signature": signature}
        )
        reported.append(resp.status)

    fake_twilio[0].before_answer = report_first
    outbox = app[appkeys.OUTBOX]
    item_id, _ = await outbox.repo.add("t:early", "+8613900000009", "你好", app[appkeys.CLOCK]())
    await app[appkeys.REDIS].xadd(keys.OUTBOUND_STREAM, {"id": str(item_id)})
    await send_all(app)
    assert reported == [204]
    item = await outbox.get(item_id)
    assert item is not None
    assert (item.status, item.error_code) == ("failed", 30003)  # not the send's "queued"
    assert item.provider_sid == fake_twilio[0].messages[0]["sid"]


async def test_members_without_a_phone_get_nothing(client: Client, app: web.Application) -> None:
    notifier = app[appkeys.NOTIFIER]
    case = Case(
        id=1, code="AAAAAAA", intake_key="k", channel="web", status="assigned", text="x",
        language="zh-CN", category=None, company=None, submitter_name=None,
        submitter_phone=None, source_tag=None, assignee_id="admin", assignee_name=None,
        received_at=app[appkeys.CLOCK](), updated_at=app[appkeys.CLOCK](),
    )  # fmt: skip
    await notifier.case_handed(case, 1)  # the demo admin has no phone number
    assert await app[appkeys.OUTBOX].needing_attention(app[appkeys.CLOCK]()) == []
