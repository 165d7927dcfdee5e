"""Hostile bodies on every POST route, public and console: a clear 4xx naming the problem,
never a 5xx, the security headers on every answer, and nothing queued or stored.

The routes come from the app's own router, so a new POST route is covered the day it lands.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline import appkeys
from hotline.queue import keys
from hotline.service.receptions import Plan
from hotline.web.middlewares import HEADERS
from tests.helpers import Client, Clock, field_named
from tests.web.console_helpers import give_password, sign_in

MULTI = "multipart/form-data; boundary=x"


def part(headers: str, value: bytes) -> bytes:
    return b"--x\r\n" + headers.encode() + b"\r\n\r\n" + value + b"\r\n--x--\r\n"


NAMED = 'Content-Disposition: form-data; name="text"'
BAD_BODIES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("escaped invalid UTF-8", "application/x-www-form-urlencoded", b"text=%FF%FE", {}),
    ("raw invalid UTF-8", "application/x-www-form-urlencoded", b"text=\xff\xfe", {}),
    ("broken escape", "application/x-www-form-urlencoded", b"text=%zz", {}),
    ("unknown charset", "application/x-www-form-urlencoded; charset=klingon", b"text=a", {}),
    ("latin-1 charset", "application/x-www-form-urlencoded; charset=latin-1", b"text=%E9", {}),
    ("multipart without boundary", "multipart/form-data", b"--x\r\n", {}),
    ("multipart garbage", MULTI, b"garbage", {}),
    ("part without a name", MULTI, part("Content-Disposition: form-data", b"v"), {}),
    ("part with invalid UTF-8", MULTI, part(NAMED, b"\xff\xfe"), {}),
    ("part with broken base64", MULTI,
     part(NAMED + "\r\nContent-Transfer-Encoding: base64", b"!!!"), {}),
    ("part with unknown encoding", MULTI,
     part(NAMED + "\r\nContent-Transfer-Encoding: weird", b"abc"), {}),
    ("part with unknown charset", MULTI,
     part(NAMED + "\r\nContent-Type: text/plain; charset=klingon", b"abc"), {}),
    ("part with a bad header", MULTI, part(NAMED + "\r\nBad Header: x", b"abc"), {}),
    ("part with a NUL in a header", MULTI, part(NAMED + "\r\nX-A: a\x00b", b"abc"), {}),
    ("a file", MULTI, part(NAMED + '; filename="a.png"', b"\x89PNG"), {}),
    # PostgreSQL cannot store a NUL; no text we keep has one: refused on every form.
    ("escaped NUL", "application/x-www-form-urlencoded", b"text=a%00b&action=reply", {}),
    ("part with a NUL", MULTI, part(NAMED, b"a\x00b"), {}),
    # aiohttp closes the connection after a body it cannot decode: a new one each time.
    ("bogus gzip", "application/x-www-form-urlencoded", b"text=abc",
     {"Content-Encoding": "gzip", "Connection": "close"}),
    ("JSON", "application/json", b'{"text": "hi"}', {}),
    ("plain text", "text/plain", b"text=hi", {}),
    ("oversize", "application/x-www-form-urlencoded", b"text=" + b"x" * 300_000, {}),
]  # fmt: skip


NUL_VALUES = ("escaped NUL", "part with a NUL")  # refused naming the field, not the body


def route_paths(app: web.Application, method: str = "POST") -> list[str]:
    """Every route of `method` (the static files aside), with plausible values in its path."""
    paths = []
    for resource in app.router.resources():
        info = resource.get_info()
        if "directory" in info or not any(route.method == method for route in resource):
            continue
        path = info.get("path") or info["formatter"].format(
            code="AAAAAAA", key="chen", tag="g", format="json", id="1", token="t", name="x"
        )
        paths.append(path)
    assert len(paths) > 15
    return paths


@pytest.fixture
async def hostile(client: Client, app: web.Application, clock: Clock) -> Client:
    """A client with a kiosk device and an admin's console session: every route reads its body."""
    _, token = await app[appkeys.KIOSKS].register("大厅", "shen", clock())
    plan = Plan("主题接待", "", "会议室", clock() + timedelta(days=2),
                clock() + timedelta(days=2, hours=2), ("chen",), (), 10)  # fmt: skip
    assert await app[appkeys.RECEPTIONS].schedule(plan, "shen") == 1  # /receptions/1 is real
    client.session.cookie_jar.update_cookies({"hotline_kiosk": token})
    await give_password(app, "admin")
    assert (await sign_in(client, "admin")).status == 303
    return client


async def nothing_stored(app: web.Application, redis_client: redis.Redis) -> None:
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0
    assert await app[appkeys.STORE].cases.count() == 0


def assert_refused(status: int, headers: Any, what: str) -> None:
    assert 400 <= status < 500, f"{what}: {status}"
    for name in HEADERS:
        assert name in headers, f"{what}: {status} without {name}"


@pytest.mark.parametrize(("name", "content_type", "body", "extra"), BAD_BODIES)
async def test_bad_bodies_get_a_4xx_on_every_post_route(
    hostile: Client,
    app: web.Application,
    redis_client: redis.Redis,
    name: str,
    content_type: str,
    body: bytes,
    extra: dict[str, str],
) -> None:
    for path in route_paths(app):
        headers = {"Content-Type": content_type} | extra
        resp = await hostile.post(path, data=body, headers=headers)
        text = await resp.text()
        assert_refused(resp.status, resp.headers, f"{name} on {path}")
        if resp.status == 400 and path != "/sms/twilio":
            named = (field_named("text"),) if name in NUL_VALUES else ("body", "请求内容")
            assert any(n in text for n in named), f"{name} on {path}: {text[:300]}"
    await nothing_stored(app, redis_client)


@pytest.mark.parametrize("value", ["é", "\xff\xfe", "x" * 500, "a b", ""])
async def test_odd_cookies_count_as_absent(
    hostile: Client, app: web.Application, value: str
) -> None:
    hostile.session.cookie_jar.clear()
    cookie = "; ".join(
        f"{name}={value}"
        for name in ("hotline_csrf", "hotline_session", "hotline_kiosk", "hotline_lang")
    )
    for method, path in [("GET", "/submit"), ("POST", "/submit"), ("GET", "/console/cases"),
                         ("POST", "/console/cases/AAAAAAA/act"), ("GET", "/kiosk"),
                         ("POST", "/kiosk"), ("POST", "/console/login")]:  # fmt: skip
        resp = await hostile.request(
            method, path, data={"csrf_token": "ż" * 40, "text": "x"},
            headers={"Cookie": cookie}, allow_redirects=False,
        )  # fmt: skip
        assert resp.status < 500, f"{method} {path} with cookie {value!r}: {resp.status}"


async def test_invalid_utf8_is_refused_not_stored_as_replacement_characters(
    client: Client, app: web.Application, redis_client: redis.Redis
) -> None:
    resp = await client.post(
        "/submit",
        data=b"text=%E8%B7%AF%FF",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    assert resp.status == 400
    assert (await resp.json())["errors"] == {"body": "not valid UTF-8 form data"}
    await nothing_stored(app, redis_client)


FUZZ_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    MULTI,
    "application/json",
    "text/plain",
    "",
]


async def test_fuzzed_bodies_and_headers_never_get_a_5xx(
    hostile: Client, app: web.Application, redis_client: redis.Redis
) -> None:
    paths = route_paths(app)
    loop = asyncio.get_running_loop()

    async def send(path: str, body: bytes, content_type: str, header: str) -> tuple[int, Any]:
        headers = {"Accept-Language": header, "X-Twilio-Signature": header}
        if content_type:
            headers["Content-Type"] = content_type
        resp = await hostile.post(path, data=body, headers=headers)
        await resp.read()
        return resp.status, resp.headers

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        path=st.sampled_from(paths),
        body=st.one_of(
            st.binary(max_size=400),
            st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
            st.dictionaries(st.sampled_from(["text", "csrf_token", "action", "rating", "id"]),
                            st.text(max_size=40), max_size=4)
              .map(lambda d: "&".join(f"{k}={v}" for k, v in d.items()).encode("utf-8",
                                                                             "surrogatepass")),
        ),
        content_type=st.sampled_from(FUZZ_TYPES).flatmap(
            lambda t: st.sampled_from([t, t + "; charset=utf-8", t + "; charset=x-unknown"])
            if t
            else st.just("")
        ),
        header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    )  # fmt: skip
    def probe(path: str, body: bytes, content_type: str, header: str) -> None:
        future = asyncio.run_coroutine_threadsafe(send(path, body, content_type, header), loop)
        status, headers = future.result(timeout=10)
        assert status < 500, f"{status} for {path} {content_type!r} {body[:80]!r}"
        for name in HEADERS:
            assert name in headers

    await asyncio.to_thread(probe)
    await nothing_stored(app, redis_client)


async def test_a_nul_in_the_url_is_refused_on_every_get_route(
    hostile: Client, app: web.Application
) -> None:
    """No text we keep or look for has a NUL, and PostgreSQL refuses one in any text (a list
    filtered by `q=%00` was a 500 there): in the query, 400 naming the parameter, on every
    route; in the path, a 4xx (each route's look-up finds nothing: 404)."""
    now = app[appkeys.CLOCK]()
    secret = await app[appkeys.TOKENS].create("hostile", "read", "test", now)
    auth = {"Authorization": f"Bearer {secret}"}
    for path in route_paths(app, "GET"):
        for query, named in (("q=%00", "q"), ("status=a%00b&q=x", "status")):
            resp = await hostile.get(f"{path}?{query}", headers=auth, allow_redirects=False)
            text = await resp.text()
            assert_refused(resp.status, resp.headers, f"{path}?{query}")
            assert resp.status == 400 and named in text, f"{path}?{query}: {text[:200]}"
    for resource in app.router.resources():
        info = resource.get_info()
        if "formatter" not in info or not any(route.method == "GET" for route in resource):
            continue
        for nul in ("%00", "a%00", "%00%00"):
            path = info["formatter"].format(
                code=nul, key=nul, tag=nul, format="json", id=nul, token=nul, name=nul
            )
            if "%00" not in path:  # its only parameter is the format
                continue
            resp = await hostile.get(path, headers=auth, allow_redirects=False)
            assert_refused(resp.status, resp.headers, path)


async def test_odd_static_names_and_scrape_formats_get_a_4xx_or_plain_text(
    hostile: Client,
) -> None:
    for path in ("/static/" + "a" * 256, "/static/" + "a/" * 3000, "/static/%00"):
        resp = await hostile.get(path)
        assert resp.status in (400, 404), f"{path[:40]}: {resp.status}"
    # A version prometheus-client cannot read: the plain text format, not a 500.
    for accept in ("application/openmetrics-text; version=x", "text/plain; version=1..0"):
        resp = await hostile.get("/metrics", headers={"Accept": accept})
        assert resp.status == 200 and resp.content_type == "text/plain", accept
        assert "hotline_" in await resp.text()


@pytest.mark.parametrize("name", ["大厅\x01", "\u202e大厅", "大\n厅"])
async def test_a_kiosk_name_with_control_characters_is_refused(
    hostile: Client, app: web.Application, name: str
) -> None:
    from tests.web.console_helpers import console_token

    before = await app[appkeys.KIOSKS].devices()
    token = await console_token(hostile, "/console/kiosks")
    resp = await hostile.post("/console/kiosks", data={"csrf_token": token, "name": name})
    assert resp.status == 400, await resp.text()
    assert await app[appkeys.KIOSKS].devices() == before


async def test_a_second_kiosk_in_use_of_the_same_name_is_refused(
    hostile: Client, app: web.Application
) -> None:
    """Two devices in use called the same are told apart by nobody (the console lists them
    by name); a revoked device's name may be given to the one that replaces it."""
    from tests.web.console_helpers import console_token

    async def register(name: str) -> Any:
        token = await console_token(hostile, "/console/kiosks")
        return await hostile.post("/console/kiosks", data={"csrf_token": token, "name": name})

    assert (await register("东门大厅")).status == 200
    before = await app[appkeys.KIOSKS].devices()
    for name in ("东门大厅", " 东门大厅 ", "Lobby"):
        resp = await register(name)
        if name == "Lobby":
            assert resp.status == 200
            continue
        assert resp.status == 400
        assert "名称：已有使用中的自助终端名为“东门大厅”。" in await resp.text()
    assert (await register("lobby")).status == 400  # letter case aside
    devices = await app[appkeys.KIOSKS].devices()
    assert len(devices) == len(before) + 1
    first = next(d for d in devices if d.name == "东门大厅")
    await app[appkeys.KIOSKS].revoke(first.id, "shen", app[appkeys.CLOCK]())
    assert (await register("东门大厅")).status == 200  # its replacement
