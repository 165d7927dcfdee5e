"""POST /submit: the whole path to a stored, assigned case, and every kind of bad input."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from hotline import appkeys
from hotline.app import MAX_REQUEST_BYTES, create_app
from hotline.queue import keys
from hotline.service.settings import Settings, Twilio
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.helpers import Client, Clock, form_fields, office_hours_config, route_all
from tests.web.console_helpers import give_password, sign_in

JSON = {"Accept": "application/json"}


async def post(client: Client, data: Any, headers: dict[str, str] | None = None) -> Any:
    return await client.post("/submit", data=data, headers=JSON if headers is None else headers)


async def test_form_renders_in_chinese_by_default(client: Client) -> None:
    resp = await client.get("/submit")
    html = await resp.text()
    assert resp.status == 200
    assert '<html lang="zh-CN">' in html and "提交诉求" in html and "金融政策" in html
    assert 'name="viewport"' in html
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "hotline_csrf" in resp.cookies


async def test_the_phone_field_promises_texts_only_when_they_can_go(
    client: Client, settings: Settings, clock: Clock
) -> None:
    page = await (await client.get("/submit")).text()
    assert "便于办理人员与您电话联系" in page and "短信告知" not in page
    twilio = Twilio(ACCOUNT_SID, AUTH_TOKEN, "+8657300000000", "http://127.0.0.1:9")
    with_sms = dataclasses.replace(settings, twilio=twilio)
    async with TestClient(TestServer(create_app(with_sms, clock=clock))) as texting:
        page = await (await texting.get("/submit")).text()
    assert "短信告知诉求编号" in page


async def test_an_address_with_a_trailing_slash_is_the_page(client: Client) -> None:
    """ "/console/" and "/submit/", as people type them: redirected to the page (the console
    answered "not found" after signing in), the query kept."""
    for typed, page in (("/console/", "/console"), ("/submit/?src=poster", "/submit?src=poster")):
        moved = await client.get(typed, allow_redirects=False)
        assert moved.status == 308 and moved.headers["Location"] == page, typed
    assert (await client.get("/console/", allow_redirects=True)).url.path == "/console/login"
    assert (await client.get("/no-such-page/")).status == 404


@pytest.mark.parametrize(
    ("query", "headers", "lang", "marker"),
    [
        ("?lang=en", {}, "en", "Submit a request"),
        ("", {"Accept-Language": "en-GB,en;q=0.9"}, "en", "Financing policy"),
        ("", {"Accept-Language": "zh-TW,zh;q=0.9,en;q=0.5"}, "zh-CN", "提交诉求"),
        ("?lang=zh-CN", {"Accept-Language": "en"}, "zh-CN", "提交诉求"),
        ("?lang=xx", {}, "zh-CN", "提交诉求"),
    ],
)
async def test_language_choice(
    client: Client, query: str, headers: dict[str, str], lang: str, marker: str
) -> None:
    html = await (await client.get("/submit" + query, headers=headers)).text()
    assert f'<html lang="{lang}">' in html and marker in html


async def test_language_switch_sticks(client: Client) -> None:
    await client.get("/submit?lang=en")
    html = await (await client.get("/submit")).text()
    assert '<html lang="en">' in html


async def test_whole_path_to_an_assigned_case(
    client: Client, app: web.Application, clock: Clock
) -> None:
    clock.now = datetime.fromisoformat("2026-11-24T08:30:00+08:00")  # zhu's shift begins
    fields = await form_fields(client, "/submit?src=Gate-1")
    assert fields["idem"]
    resp = await post(
        client,
        fields
        | {
            "text": "  园区3号楼消防通道被占用\r\n请尽快处理  ",
            "category": "safety",
            "company": "平湖嘉创精密机械有限公司",
            "name": "李女士",
            "phone": "138 0000 0009",
            "src": "gate-1",
        },
    )
    assert resp.status == 201
    body = await resp.json()
    code = body["code"]
    assert body == {"code": code, "status_url": f"/track/{code}"}
    # Intake answered before routing: nothing is in SQLite yet.
    assert await app[appkeys.STORE].cases.count() == 0
    assert await route_all(app) == 1
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    # The company is paired (包保) with chen; zhu, on duty, and shen (a safety request) are
    # copied.
    assert case.assignee_id == "chen" and case.status == "assigned" and case.channel == "web"
    assigned = (await app[appkeys.STORE].cases.events(case.id))[1]
    assert assigned.detail == {"to": "chen", "reason": "paired", "copy": ["zhu", "shen"]}
    assert case.text == "园区3号楼消防通道被占用\n请尽快处理"
    assert case.submitter_phone == "+8613800000009"
    assert case.source_tag == "gate-1" and case.category == "safety"
    assert case.received_at == clock.now


async def test_html_success_page_shows_code_and_track_link(client: Client) -> None:
    fields = await form_fields(client)
    resp = await post(client, fields | {"text": "路灯坏了"}, headers={})
    html = await resp.text()
    assert resp.status == 201
    code = html.split('id="case-code">')[1].split("<")[0]
    assert f'href="/track/{code}"' in html
    # The language switch keeps the code in view (the status page); another request from
    # the same poster keeps its tag.
    assert f'href="/track/{code}?lang=en"' in html
    tagged = await post(client, fields | {"text": "井盖松动", "src": "gate-1", "idem": "k" * 20},
                        headers={})  # fmt: skip
    assert 'id="another">' in (page := await tagged.text()) and "/submit?src=gate-1" in page
    assert 'href="/submit" id="another"' in html


async def test_double_submit_makes_one_case(client: Client, app: web.Application) -> None:
    fields = await form_fields(client)
    first = await (await post(client, fields | {"text": "hello"})).json()
    second = await (await post(client, fields | {"text": "hello"})).json()
    assert first["code"] == second["code"]
    await route_all(app)
    assert await app[appkeys.STORE].cases.count() == 1


async def test_idempotency_key_header(client: Client) -> None:
    fields = await form_fields(client)
    del fields["idem"]
    headers = JSON | {"Idempotency-Key": "kiosk-0123456789abcdef"}
    a = await (await post(client, fields | {"text": "x"}, headers)).json()
    b = await (await post(client, fields | {"text": "x"}, headers)).json()
    assert a["code"] == b["code"]


BAD_FIELDS = [
    ({"text": ""}, "text", "required"),
    ({"text": "   \n  "}, "text", "required"),
    ({"text": "x" * 4001}, "text", "at most 4000 characters (this has 4001)"),
    ({"text": "bad\x00byte"}, "text", "control characters"),
    ({"text": "bell\x07"}, "text", "control characters"),
    ({"text": "esc\x1b[31m"}, "text", "control characters"),
    ({"text": "ok", "company": "line\nbreak"}, "company", "line breaks"),
    ({"text": "ok", "company": "c" * 201}, "company", "at most 200"),
    ({"text": "ok", "name": "n\x00"}, "name", "control characters"),
    ({"text": "ok", "phone": "12345"}, "phone", "Not a valid phone number"),
    ({"text": "ok", "phone": "call me"}, "phone", "Not a valid phone number"),
    ({"text": "ok", "phone": "0573-85012345"}, "phone", "texts cannot reach"),  # a landline
    ({"text": "ok", "phone": "400-810-8888"}, "phone", "texts cannot reach"),  # a service line
    ({"text": "ok", "category": "weather"}, "category", "Unknown category"),
    ({"text": "ok", "src": "../etc"}, "src", "Not a valid source tag"),
    ({"text": "ok", "idem": "short"}, "idem", "idempotency key"),
    ({"text": "ok", "urgent": "very"}, "urgent", "Tick the box"),
]


@pytest.mark.parametrize(("fields", "name", "message"), BAD_FIELDS)
async def test_bad_input_is_a_400_naming_the_field_and_nothing_is_queued(
    client: Client, redis_client: redis.Redis, fields: dict[str, str], name: str, message: str
) -> None:
    form = await form_fields(client)
    resp = await post(client, form | fields)
    assert resp.status == 400
    errors = (await resp.json())["errors"]
    assert name in errors and message in errors[name], errors
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_4000_characters_is_fine(client: Client) -> None:
    form = await form_fields(client)
    assert (await post(client, form | {"text": "字" * 4000})).status == 201


async def test_html_errors_keep_what_the_user_typed(client: Client) -> None:
    form = await form_fields(client)
    resp = await post(client, form | {"text": "我的诉求", "phone": "123"}, headers={})
    html = await resp.text()
    assert resp.status == 400
    assert "我的诉求</textarea>" in html and 'aria-invalid="true"' in html
    assert "不是有效的电话号码" in html


async def test_several_problems_are_reported_together(client: Client) -> None:
    form = await form_fields(client)
    resp = await post(client, form | {"text": "", "phone": "1", "category": "zz"})
    assert set((await resp.json())["errors"]) == {"text", "phone", "category"}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"csrf_token": None}, "missing"),
        ({"csrf_token": "forged.token.value"}, "invalid"),
    ],
)
async def test_csrf_is_required(
    client: Client, redis_client: redis.Redis, change: dict[str, str | None], expected: str
) -> None:
    form = await form_fields(client)
    data = {k: v for k, v in (form | {"text": "hi"} | change).items() if v is not None}
    resp = await post(client, data)
    assert resp.status == 403
    assert expected in (await resp.json())["errors"]["csrf_token"]
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_csrf_token_from_another_browser_is_refused(
    client: Client, app: web.Application
) -> None:
    form = await form_fields(client)
    client.session.cookie_jar.clear()
    await client.get("/submit")  # a different cookie now
    resp = await post(client, form | {"text": "hi"})
    assert resp.status == 403
    assert "does not match" in (await resp.json())["errors"]["csrf_token"]


async def test_missing_csrf_on_the_html_form_rerenders_it(client: Client) -> None:
    resp = await post(client, {"text": "hi"}, headers={})
    assert resp.status == 403
    page = await resp.text()
    assert "hi</textarea>" in page
    # Said as people meet it (a form left open too long): nothing to correct, send again.
    assert 'id="form-expired"' in page and "请再次点击" in page
    assert "请修改标出的内容" not in page and "CSRF" not in page


async def test_wrong_types(client: Client, redis_client: redis.Redis) -> None:
    form = await form_fields(client)
    # A file where text is expected.
    data = FormData(form)
    data.add_field("text", b"\x89PNG...", filename="x.png", content_type="image/png")
    resp = await post(client, data)
    assert resp.status == 400 and "files are not accepted" in (await resp.json())["errors"]["body"]
    # The same field twice.
    resp = await post(client, [*form.items(), ("text", "a"), ("text", "b")])
    assert resp.status == 400 and "more than once" in (await resp.json())["errors"]["text"]
    # JSON instead of a form.
    resp = await client.post("/submit", json={"text": "hi"}, headers=JSON)
    assert resp.status == 415
    assert "x-www-form-urlencoded" in (await resp.json())["error"]
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_oversized_body_is_413(client: Client, redis_client: redis.Redis) -> None:
    form = await form_fields(client)
    resp = await post(client, form | {"text": "x" * 300_000})
    assert resp.status == 413
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0
    # Said in ours (not aiohttp's English), naming the body: on the page, in the reader's
    # language; as JSON, in the shape of the form's refusals.
    page = await (await client.post("/submit", data=form | {"text": "x" * 300_000})).text()
    assert "内容：最多 256 KiB。" in page and "Maximum" not in page
    answer = await client.post(
        "/submit", data=form | {"text": "x" * 300_000}, headers={"Accept": "application/json"}
    )
    assert answer.status == 413
    assert (await answer.json())["errors"] == {"body": "At most 256 KiB."}
    assert MAX_REQUEST_BYTES == 256 * 1024  # what the message says


async def test_bad_src_on_the_form_link_is_dropped_not_fatal(client: Client) -> None:
    html = await (await client.get("/submit?src=<script>")).text()
    assert 'name="src"' not in html and "<script>" not in html


class TestOutsideDutyHours:
    @pytest.fixture
    def config_path(self, tmp_path: Path, config_path: Path) -> Path:
        return office_hours_config(config_path, tmp_path)

    async def test_the_success_page_says_when_handling_resumes(
        self, client: Client, clock: Clock
    ) -> None:
        clock.now = datetime.fromisoformat("2026-11-28T10:00:00+08:00")  # Saturday
        form = await form_fields(client)
        resp = await post(client, form | {"text": "周六的诉求"}, headers={})
        html = await resp.text()
        assert resp.status == 201
        assert "现在是值班时间以外，将于 2026-11-30 08:30 开始办理。" in html

    async def test_not_within_hours(self, client: Client, clock: Clock) -> None:
        clock.now = datetime.fromisoformat("2026-11-27T10:00:00+08:00")
        form = await form_fields(client)
        html = await (await post(client, form | {"text": "周五"}, headers={})).text()
        assert 'id="resumes"' not in html


class TestStandingHeadOutsideHours:
    @pytest.fixture
    def config_path(self, tmp_path: Path, config_path: Path) -> Path:
        path = office_hours_config(config_path, tmp_path)
        text = path.read_text("utf-8").replace(
            'hours = "workdays', 'outside_hours = "standing-head"\nhours = "workdays'
        )
        path.write_text(text, "utf-8")
        return path

    async def test_the_form_says_the_standing_head_takes_requests(
        self, client: Client, clock: Clock
    ) -> None:
        """Not "no one is on duty": outside duty hours the standing head takes them."""
        clock.now = datetime.fromisoformat("2026-11-28T10:00:00+08:00")  # Saturday
        html = await (await client.get("/submit")).text()
        assert "现在是值班时间以外，由常设点长沈点长受理诉求。" in html
        assert "现在不在值班时间" not in html
        english = await (await client.get("/submit?lang=en")).text()
        assert "the standing head, takes requests now" in english


async def test_an_urgent_request_copies_the_standing_head(
    client: Client, app: web.Application
) -> None:
    """The standing head is copied at once; the members' texts and the console say it is
    urgent."""
    form = await form_fields(client)
    resp = await post(client, form | {"text": "仓库起火隐患", "urgent": "1"})
    code = (await resp.json())["code"]
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.urgent
    assigned = (await app[appkeys.STORE].cases.events(case.id))[1]
    assert assigned.detail["copy"] == ["shen"]
    to_members = [o.body for o in await app[appkeys.OUTBOX].for_case(case.id) if o.member_id]
    assert len(to_members) == 2 and all(b.startswith("【紧急】") for b in to_members)
    await give_password(app, "shen")
    await sign_in(client, "shen")
    assert 'id="urgent"' in await (await client.get(f"/console/cases/{code}")).text()
    listed = await (await client.get("/console/cases?view=open")).text()
    row = listed[listed.index(f'data-code="{code}"') :].split("</tr>")[0]
    assert "紧急" in row
