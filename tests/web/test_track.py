"""GET /track/{code}: status and dates, never the submitter's personal data."""

from __future__ import annotations

import sqlite3

import pytest
import redis.asyncio as redis
from aiohttp import web

from hotline import appkeys
from hotline.queue import keys
from hotline.service.casework import Request
from hotline.service.store.database import Conn, StoreUnavailable
from hotline.service.workflow import Action
from hotline.web.limits import TRACK_MISSES
from hotline.web.middlewares import HEADERS
from tests.helpers import Client, form_fields, route_all

JSON = {"Accept": "application/json"}


async def submit(client: Client, **fields: str) -> str:
    form = await form_fields(client)
    resp = await client.post("/submit", data=form | fields, headers=JSON)
    assert resp.status == 201
    code: str = (await resp.json())["code"]
    return code


async def test_received_before_routing(client: Client) -> None:
    code = await submit(client, text="hello")
    resp = await client.get(f"/track/{code}", headers=JSON)
    data = await resp.json()
    assert resp.status == 200
    assert data["status"] == "received" and data["assignee"] is None
    assert data["events"] == [{"at": data["received_at"], "status": "received"}]


async def test_assigned_case_json(client: Client, app: web.Application) -> None:
    code = await submit(client, text="hello", name="李女士", phone="13800000009")
    await route_all(app)
    data = await (await client.get(f"/track/{code.lower()}", headers=JSON)).json()
    assert set(data) == {
        "code", "status", "channel", "received_at", "updated_at", "assignee", "events"
    }  # fmt: skip
    assert data["code"] == code and data["status"] == "assigned" and data["channel"] == "web"
    assert data["assignee"] == {"id": "zhu", "name": "朱代表"}
    assert [e["status"] for e in data["events"]] == ["received", "assigned"]
    assert data["received_at"].endswith("Z")


async def test_page_shows_status_dates_and_name_but_no_personal_data(
    client: Client, app: web.Application
) -> None:
    code = await submit(
        client, text="秘密的诉求内容", name="李女士", phone="13800000009", company="某公司"
    )
    await route_all(app)
    html = await (await client.get(f"/track/{code}")).text()
    assert code in html and "朱代表" in html and "已交代表办理" in html
    assert "2026-11-24 11:00" in html  # shown in the point's time zone (UTC+8)
    for private in ("李女士", "13800000009", "+8613800000009", "秘密的诉求内容", "某公司"):
        assert private not in html


async def test_unknown_and_impossible_codes_are_404(client: Client) -> None:
    for code in ("ZZZZZZZ", "0000000", "x" * 300, "%00"):
        resp = await client.get(f"/track/{code}")
        assert resp.status == 404
        assert "没有这个编号的诉求" in await resp.text()
    resp = await client.get("/track/ZZZZZZZ", headers=JSON)
    assert resp.status == 404 and (await resp.json())["error"] == "no case with this code"


async def test_a_code_can_be_typed_in_to_follow_a_request(client: Client) -> None:
    """Every public page links to a box for the code (one on a kiosk's slip, or read out on
    the phone); what can be a code goes to its page, what cannot is named."""
    code = await submit(client, text="hello")
    page = await (await client.get("/submit")).text()
    assert 'href="/track"' in page and "查询诉求进度" in page
    resp = await client.get("/track")
    assert resp.status == 200 and 'name="code"' in await resp.text()
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code)  # a Chinese input method's letters
    for typed in (f" {code[:3].lower()}-{code[3:]} ", wide, f"{code[:3]}—{code[3:]}"):
        resp = await client.get("/track", params={"code": typed}, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == f"/track/{code}", typed
    for bad in ("12", "ABC\x01DEFG", "x" * 500):
        resp = await client.get("/track", params={"code": bad})
        body = await resp.text()
        assert resp.status == 400 and "这不是诉求编号" in body and "\x01" not in body
    resp = await client.get("/track", params={"code": " "})  # the box sent empty
    assert resp.status == 400 and "请输入诉求编号" in await resp.text()
    resp = await client.get("/track/ZZZZZZZ")  # unknown: the box again, to try once more
    body = await resp.text()
    assert resp.status == 404 and 'name="code"' in body and 'value="ZZZZZZZ"' in body


async def test_unknown_route_is_a_404_page(client: Client) -> None:
    resp = await client.get("/nowhere")
    assert resp.status == 404 and "前往诉求填报页" in await resp.text()
    assert resp.headers["X-Frame-Options"] == "DENY"
    resp = await client.get("/nowhere", headers=JSON)
    assert resp.status == 404 and "error" in await resp.json()


async def test_wrong_method_is_405(client: Client) -> None:
    resp = await client.put("/submit")
    assert resp.status == 405 and "GET" in resp.headers["Allow"]


async def test_health_and_readiness(client: Client) -> None:
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    assert (await (await client.get("/readyz")).json())["status"] == "ready"


async def test_guessing_codes_is_limited_but_looking_up_your_own_never_is(
    client: Client, redis_client: redis.Redis
) -> None:
    code = await submit(client, text="hello")
    for _ in range(100):  # hits never count
        assert (await client.get(f"/track/{code}", headers=JSON)).status == 200
    for i in range(TRACK_MISSES):
        guess = f"ABCD{i:03d}".replace("0", "2").replace("1", "3")
        assert (await client.get(f"/track/{guess}", headers=JSON)).status == 404
    refused = await client.get("/track/ZZZZZZZ", headers=JSON)
    assert refused.status == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 600
    assert "unknown codes" in (await refused.json())["error"]
    page = await (await client.get("/track/ZZZZZZZ")).text()  # as a person sees it
    assert "<h1>操作过于频繁</h1>" in page and "请求有误" not in page
    # The address is refused for a while, whatever it asks; the counter expires by itself.
    assert (await client.get(f"/track/{code}", headers=JSON)).status == 429
    ttl = await redis_client.ttl(keys.TRACK_MISSES + "127.0.0.1")
    assert 0 < ttl <= 600


async def test_an_unexpected_error_is_a_500_page_with_the_security_headers(
    client: Client, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(code: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app[appkeys.STORE].cases, "by_code", broken)
    page = await client.get("/track/ABCDEFG")
    assert page.status == 500
    text = await page.text()
    assert "disk on fire" not in text  # logged, never shown
    assert "<h1>系统出现问题</h1>" in text and "请求有误" not in text  # not the asker's fault
    for name in HEADERS:
        assert name in page.headers
    answer = await client.get("/track/ABCDEFG", headers=JSON)
    assert answer.status == 500 and "error" in await answer.json()


async def test_a_database_that_cannot_be_reached_is_a_503_saying_so(
    client: Client, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database down (locked, restarting, failing over) is no bug of ours: a 503 that
    says to try again shortly (with Retry-After), not "something went wrong"."""
    refused = StoreUnavailable("the database cannot be reached: ConnectionRefusedError()")
    for error in (sqlite3.OperationalError("database is locked"), refused):

        async def down(code: str, error: Exception = error) -> None:
            raise error

        monkeypatch.setattr(app[appkeys.STORE].cases, "by_code", down)
        page = await client.get("/track/ABCDEFG")
        assert page.status == 503 and page.headers["Retry-After"] == "30"
        body = await page.text()
        assert "服务暂时无法连接数据库" in body and "<h1>暂时无法服务</h1>" in body
        answer = await client.get("/track/ABCDEFG", headers=JSON)
        assert answer.status == 503 and "database" in (await answer.json())["error"]


async def test_a_reply_by_sms_stays_off_the_public_page(
    client: Client, app: web.Application
) -> None:
    """A reply to a submitter who left a number goes by SMS to them alone (the console says
    so): /track and Open311's status_notes show only replies to those who left none."""
    texted = await submit(client, text="厂区路灯坏了", phone="13800000009")
    public = await submit(client, text="东门积水")
    await route_all(app)
    work, now = app[appkeys.CASEWORK], app[appkeys.CLOCK]()
    for code, text in ((texted, "张先生您好，电工明早到贵司"), (public, "已联系物业抽水")):
        await work.act(code, Request(Action.REPLY, "zhu", text=text), now)
    assert "张先生" not in await (await client.get(f"/track/{texted}")).text()
    assert "已联系物业抽水" in await (await client.get(f"/track/{public}")).text()
    reader = await app[appkeys.TOKENS].create("city-reader", "read", "test", now)
    notes = {}
    for code in (texted, public):
        resp = await client.get(f"/open311/v2/requests/{code}.json?api_key={reader}")
        notes[code] = (await resp.json())[0]["status_notes"]
    assert notes == {texted: None, public: "已联系物业抽水"}

    async def never_reached(db: Conn) -> None:  # opted out meanwhile, or no SMS provider
        await db.execute("UPDATE outbox SET status = 'opted-out' WHERE body LIKE '%张先生%'")

    await app[appkeys.STORE].write(never_reached)  # the page is where it can be read now
    assert "张先生" in await (await client.get(f"/track/{texted}")).text()
    resp = await client.get(f"/open311/v2/requests/{texted}.json?api_key={reader}")
    assert (await resp.json())[0]["status_notes"] == "张先生您好，电工明早到贵司"
