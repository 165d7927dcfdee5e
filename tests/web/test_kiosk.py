"""The kiosk (device tokens, submit only, assisted walk-ins, the slip) and QR posters."""

from __future__ import annotations

import base64
import io
import re

import pytest
import zxingcpp
from aiohttp import web
from PIL import Image

from hotline import appkeys
from tests.helpers import Client, field_named, route_all
from tests.web.console_helpers import console_token, give_password, sign_in

JSON = {"Accept": "application/json"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def decode_qr(html: str, element_id: str | None = None) -> str:
    """Read the QR code in a page's <img src="data:image/png;base64,...">."""
    pattern = (
        rf'id="{element_id}" ' if element_id else ""
    ) + r'src="data:image/png;base64,([^"]+)"'
    found = re.search(pattern, html)
    assert found, html[:300]
    image = Image.open(io.BytesIO(base64.b64decode(found.group(1))))
    [result] = zxingcpp.read_barcodes(image)
    return str(result.text)


async def register_kiosk(client: Client, app: web.Application) -> str:
    """A head registers a kiosk; returns the one-time setup path."""
    await give_password(app, "shen")
    await sign_in(client, "shen")
    token = await console_token(client, "/console/kiosks")
    page = await (
        await client.post("/console/kiosks", data={"csrf_token": token, "name": "大厅"})
    ).text()
    setup = re.search(r'id="kiosk-setup">([^<]+)<', page)
    assert setup
    logout_token = await console_token(client, "/console/kiosks")
    await client.post("/console/logout", data={"csrf_token": logout_token})
    return "/kiosk?" + setup.group(1).split("/kiosk?")[1]


@pytest.fixture
async def kiosk(client: Client, app: web.Application) -> Client:
    setup = await register_kiosk(client, app)
    resp = await client.get(setup, allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies["hotline_kiosk"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/kiosk"
    client.session.cookie_jar.update_cookies(resp.cookies, response_url=resp.url)
    return client


async def kiosk_form(client: Client) -> dict[str, str]:
    page = await (await client.get("/kiosk")).text()
    token = _TOKEN.search(page.split('id="kiosk-form"')[1])
    assert token
    return {"csrf_token": token.group(1)}


async def test_the_kiosk_needs_a_registered_device(client: Client) -> None:
    resp = await client.get("/kiosk")
    assert resp.status == 403 and "自助终端" in await resp.text()
    assert (await client.get("/kiosk?device=made-up")).status == 403
    assert (await client.post("/kiosk", data={"text": "x"})).status == 403


async def test_a_kiosk_submits_with_its_own_idempotency_key(
    kiosk: Client, app: web.Application
) -> None:
    page = await (await kiosk.get("/kiosk")).text()
    assert 'class="tiles"' in page and "当前值班：朱代表" in page
    form = await kiosk_form(kiosk) | {"text": "大厅空调坏了", "category": "other", "idem": "k" * 32}
    first = await kiosk.post("/kiosk", data=form, headers=JSON)
    again = await kiosk.post("/kiosk", data=form, headers=JSON)  # the page's retry
    assert first.status == again.status == 201
    body = await first.json()
    assert body == await again.json()
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(body["code"])
    assert case is not None and case.channel == "kiosk" and case.taken_by is None
    slip = await (await kiosk.get(body["slip_url"])).text()
    assert body["code"] in slip
    assert decode_qr(slip) == f"http://{kiosk.host}:{kiosk.port}/track/{body['code']}"


async def test_kiosk_bad_input(kiosk: Client, app: web.Application) -> None:
    form = await kiosk_form(kiosk)
    empty = await kiosk.post("/kiosk", data=form | {"text": ""}, headers=JSON)
    # The kiosk's page shows them to the visitor: in the kiosk's language.
    assert empty.status == 400 and (await empty.json())["errors"] == {"text": "此项为必填。"}
    english = await kiosk.post(
        "/kiosk", data=form | {"text": ""}, headers=JSON | {"Accept-Language": "en"}
    )
    assert (await english.json())["errors"] == {"text": "This field is required."}
    no_csrf = await kiosk.post("/kiosk", data={"text": "x"}, headers=JSON)
    assert no_csrf.status == 403


async def test_a_kiosk_can_only_submit(kiosk: Client) -> None:
    resp = await kiosk.get("/console/cases", allow_redirects=False)
    assert resp.status == 303 and "/console/login" in resp.headers["Location"]


async def test_a_revoked_kiosk_is_refused(kiosk: Client, app: web.Application) -> None:
    [device] = await app[appkeys.KIOSKS].devices()
    assert await app[appkeys.KIOSKS].revoke(device.id, "shen", app[appkeys.CLOCK]())
    assert (await kiosk.get("/kiosk")).status == 403


async def test_assisted_walk_in(kiosk: Client, app: web.Application) -> None:
    await give_password(app, "chen")
    await sign_in(kiosk, "chen")
    page = await (await kiosk.get("/kiosk")).text()
    assert "陈代表 正在为来访者代为登记诉求" in page and 'id="kiosk-signout"' in page
    form = await kiosk_form(kiosk) | {"text": "代来访企业反映：用电报装慢"}
    body = await (await kiosk.post("/kiosk", data=form, headers=JSON)).json()
    await route_all(app)
    case = await app[appkeys.STORE].cases.by_code(body["code"])
    assert case is not None and case.channel == "walk-in" and case.taken_by == "chen"
    [received, *_] = await app[appkeys.STORE].cases.events(case.id)
    assert received.actor == "chen"


async def test_qr_posters(client: Client, app: web.Application) -> None:
    await give_password(app, "shen")
    await sign_in(client, "shen")
    token = await console_token(client, "/console/posters")
    bad = await client.post(
        "/console/posters", data={"csrf_token": token, "tag": "Bad Tag", "label": "x"}
    )
    assert bad.status == 400 and field_named("tag") in await bad.text()
    ok = await client.post(
        "/console/posters", data={"csrf_token": token, "tag": "canteen", "label": "食堂门口"}
    )
    assert ok.status == 200 and "食堂门口" in await ok.text()
    poster = await (await client.get("/console/posters/canteen")).text()
    assert (
        decode_qr(poster, "poster-qr") == f"http://{client.host}:{client.port}/submit?src=canteen"
    )
    assert (await client.get("/console/posters/nope")).status == 404


async def test_reps_cannot_manage_kiosks_or_posters(client: Client, app: web.Application) -> None:
    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    assert (await client.get("/console/kiosks")).status == 403
    assert (await client.get("/console/posters")).status == 403
