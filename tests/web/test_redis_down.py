"""Every intake path answers with a case code while Redis is unreachable, and its public
page renders; each spooled code becomes exactly that case once Redis is back."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from hotline import appkeys
from hotline.queue.embedded import EmbeddedRedis
from hotline.service.settings import Settings, Twilio
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import Client, Clock, form_fields, route_all


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(settings: Settings, own_redis: EmbeddedRedis) -> Settings:
    return dataclasses.replace(
        settings,
        redis_url=own_redis.url,
        twilio=Twilio(ACCOUNT_SID, AUTH_TOKEN, None, None),
    )


async def sms(client: Client, body: str, sid: str) -> str:
    params = {"MessageSid": sid, "From": "+8613900000001", "Body": body, "NumMedia": "0"}
    url = str(client.make_url("/sms/twilio"))
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    resp = await client.post("/sms/twilio", data=params, headers={"X-Twilio-Signature": signature})
    assert resp.status == 200, await resp.text()
    return await resp.text()


async def test_every_channel_spools_and_every_code_becomes_its_case(
    client: Client, app: web.Application, own_redis: EmbeddedRedis, clock: Clock
) -> None:
    _, token = await app[appkeys.KIOSKS].register("大厅", "shen", clock())
    kiosk_cookie = {"hotline_kiosk": token}
    fields = await form_fields(client)
    own_redis.stop()

    assert (await client.get("/submit")).status == 200
    resp = await client.post(
        "/submit", data=fields | {"text": "停电了"}, headers={"Accept": "application/json"}
    )
    assert resp.status == 201, await resp.text()
    web_code = (await resp.json())["code"]
    page = await client.post("/submit", data=(await form_fields(client)) | {"text": "路灯坏了"})
    assert page.status == 201 and "路灯坏了" not in await page.text()
    html_code = re.search(r'id="case-code">([^<]+)<', await page.text())
    assert html_code

    sms_reply = await sms(client, "厂区门口路灯坏了", "SM" + uuid.uuid4().hex)
    sms_code = re.search(r"[23456789A-HJKMNP-TW-Z]{7}", sms_reply.split("编号", 1)[1])
    assert sms_code

    kiosk_page = await client.get("/kiosk", cookies=kiosk_cookie)
    assert kiosk_page.status == 200
    kiosk_token = re.search(r'name="csrf_token" value="([^"]+)"', await kiosk_page.text())
    assert kiosk_token
    resp = await client.post(
        "/kiosk",
        data={
            "csrf_token": kiosk_token.group(1),
            "text": "食堂需要更多座位",
            "idem": uuid.uuid4().hex,
        },
        cookies=kiosk_cookie,
        headers={"Accept": "application/json"},
    )
    assert resp.status == 201, await resp.text()
    kiosk_code = (await resp.json())["code"]
    slip = await client.get(f"/kiosk/slip/{kiosk_code}", cookies=kiosk_cookie)
    assert slip.status == 200

    codes = {web_code, html_code.group(1), sms_code.group(0), kiosk_code}
    assert len(codes) == 4
    for code in codes:
        track = await client.get(f"/track/{code}")
        assert track.status == 200 and 'id="registering"' in await track.text()

    own_redis.start()
    assert await app[appkeys.INTAKE].drain_spool() == 4
    assert await route_all(app) == 4
    for code in codes:
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None, f"{code} was handed out but never stored"
    assert await app[appkeys.STORE].cases.count() == 4


async def test_a_redis_that_lost_its_data_is_refilled_while_the_service_runs(
    client: Client, app: web.Application
) -> None:
    """A flush (or a failover to an empty replica) under a running service: intake spools
    instead of issuing codes unchecked, the spool drainer rebuilds the code filter from the
    store within seconds, and the spooled request keeps its code."""

    async def submit(text: str) -> str:
        fields = await form_fields(client)
        resp = await client.post(
            "/submit", data=fields | {"text": text}, headers={"Accept": "application/json"}
        )
        assert resp.status == 201, await resp.text()
        code: str = (await resp.json())["code"]
        return code

    first = await submit("路灯坏了")
    await route_all(app)
    await app[appkeys.REDIS].flushall()
    second = await submit("停电了")  # answered from the spool
    intake = app[appkeys.INTAKE]
    assert len(intake.spooled()) == 1
    for _ in range(100):  # the drainer runs every 2 s
        if not intake.spooled():
            break
        await asyncio.sleep(0.1)
    assert intake.spooled() == [] and await intake.has_code_filter()
    await route_all(app)
    for code in (first, second):
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None


async def test_the_api_and_open311_spool_too(
    client: Client, app: web.Application, own_redis: EmbeddedRedis, clock: Clock
) -> None:
    """A partner's POST (the JSON API, Open311) gets its code while Redis is down, as every
    channel does (the token's rate is not counted then); the code becomes its case."""
    secret = await app[appkeys.TOKENS].create("partner", "write", "test", clock())
    category = app[appkeys.DIRECTORY].config.categories[0].code
    own_redis.stop()
    resp = await client.post(
        "/api/v1/cases",
        json={"text": "园区东门积水"},
        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": "k" * 20},
    )
    assert resp.status == 201, await resp.text()
    api_code = (await resp.json())["code"]
    resp = await client.post(
        "/open311/v2/requests.json",
        data={"api_key": secret, "service_code": category, "description": "路灯坏了"},
    )
    assert resp.status == 201, await resp.text()
    open311_code = (await resp.json())[0]["service_request_id"]
    own_redis.start()
    assert await app[appkeys.INTAKE].drain_spool() == 2
    assert await route_all(app) == 2
    for code, channel in ((api_code, "api"), (open311_code, "open311")):
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None and case.channel == channel


async def test_with_the_spool_refusing_too_nothing_is_said_received(
    client: Client, app: web.Application, own_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    """Redis down and the spool unwritable (a full or read-only disk): no code is given. The
    form and the API answer 503 saying the request was not kept; a text is answered so
    (Twilio does not send a webhook again): never "received"."""
    fields = await form_fields(client)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    app[appkeys.INTAKE].spool_dir = blocked / "spool"
    own_redis.stop()
    resp = await client.post(
        "/submit", data=fields | {"text": "停电了"}, headers={"Accept": "application/json"}
    )
    assert resp.status == 503 and resp.headers["Retry-After"] == "60"
    assert "was not kept" in (await resp.json())["error"]
    reply = await sms(client, "厂区门口路灯坏了", "SM" + uuid.uuid4().hex)
    assert "未被保存" in reply and "编号" not in reply
    assert not blocked.with_name("spool").exists()
