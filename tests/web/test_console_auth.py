"""Console sign-in: argon2id passwords, server-side sessions, expiry, revocation,
rate limits, CSRF, roles and security headers."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestClient

from hotline import appkeys
from hotline.queue import keys
from hotline.service.accounts import account
from hotline.service.settings import Settings, SettingsError
from hotline.web.auth import ADDRESS_LIMIT
from tests.helpers import Client, Clock, field_named
from tests.web.console_helpers import PASSWORD, console_token, give_password, sign_in


@pytest.fixture
async def zhu(client: Client, app: web.Application) -> Client:
    await give_password(app, "zhu")
    return client


async def test_the_console_needs_a_session(client: Client) -> None:
    resp = await client.get("/console/cases?view=all", allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/login?next=/console/cases?view%3Dall"
    events = await client.get("/console/events", headers={"Accept": "text/event-stream"})
    assert events.status == 401
    post = await client.post("/console/cases/AAAAAAA/act", data={"action": "note"})
    assert post.status == 401


async def test_passwords_are_argon2id(zhu: Client, app: web.Application) -> None:
    found = await account(app[appkeys.STORE], "zhu")
    assert found is not None and found.password_hash
    assert found.password_hash.startswith("$argon2id$")
    assert PASSWORD not in found.password_hash


async def test_sign_in_sets_a_safe_cookie_and_a_server_side_session(
    zhu: Client, redis_client: redis.Redis
) -> None:
    resp = await sign_in(zhu, "zhu")
    assert resp.status == 303 and resp.headers["Location"] == "/console/cases"
    cookie = resp.cookies["hotline_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and not cookie["secure"]
    token = cookie.value
    stored = await redis_client.keys(keys.SESSION + "*")
    assert stored == [(keys.SESSION + hashlib.sha256(token.encode()).hexdigest()).encode()]
    assert (await zhu.get("/console/cases")).status == 200


async def test_wrong_password_and_unknown_member_look_the_same(zhu: Client) -> None:
    wrong = await sign_in(zhu, "zhu", "not-the-password")
    nobody = await sign_in(zhu, "nobody", "not-the-password")
    assert wrong.status == nobody.status == 401
    assert "账号或密码错误" in await wrong.text()
    assert "账号或密码错误" in await nobody.text()


async def test_a_new_session_id_at_every_sign_in(zhu: Client) -> None:
    first = (await sign_in(zhu, "zhu")).cookies["hotline_session"].value
    second = (await sign_in(zhu, "zhu")).cookies["hotline_session"].value
    assert first != second
    zhu.session.cookie_jar.clear()
    old = await zhu.get(
        "/console/cases", headers={"Cookie": f"hotline_session={first}"}, allow_redirects=False
    )
    assert old.status == 303  # the earlier session ended when the new one began


async def test_login_is_locked_after_ten_failures(zhu: Client, clock: Clock) -> None:
    for _ in range(10):
        assert (await sign_in(zhu, "zhu", "wrong-password")).status == 401
    locked = await sign_in(zhu, "zhu")  # the right password is refused too
    assert locked.status == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    clock.now += timedelta(minutes=15, seconds=1)
    assert (await sign_in(zhu, "zhu")).status == 303


async def test_parallel_guesses_cannot_race_past_the_limit(zhu: Client) -> None:
    page = await (await zhu.get("/console/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "member": "zhu", "password": "wrong-password"}
    answers = await asyncio.gather(
        *(zhu.post("/console/login", data=form, allow_redirects=False) for _ in range(60))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) == 10 and statuses.count(429) == 50, statuses


class TestBehindAProxy:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, trusted_proxies=("127.0.0.1",))

    async def test_each_client_address_is_limited_on_its_own(self, zhu: Client) -> None:
        for i in range(ADDRESS_LIMIT):
            attacker = {"X-Forwarded-For": "203.0.113.9"}
            await sign_in(zhu, f"guess{i}", "wrong-password", headers=attacker)
        assert (await sign_in(zhu, "zhu", headers={"X-Forwarded-For": "203.0.113.9"})).status == 429
        # Everyone else, behind the same proxy, still signs in.
        assert (
            await sign_in(zhu, "zhu", headers={"X-Forwarded-For": "198.51.100.7"})
        ).status == 303

    async def test_health_checks_need_no_proxy(self, zhu: Client) -> None:
        assert (await zhu.get("/healthz")).status == 200


def test_trusted_proxies_must_be_addresses(tmp_path: Path) -> None:
    env = {"HOTLINE_CONFIG": "x.toml", "HOTLINE_SECRET_KEY": "k", "HOTLINE_DATA_DIR": str(tmp_path)}
    parsed = Settings.from_env(env | {"HOTLINE_TRUSTED_PROXIES": "10.0.0.1, 10.1.0.0/16"})
    assert parsed.trusted_proxies == ("10.0.0.1", "10.1.0.0/16")
    with pytest.raises(SettingsError, match="not an address"):
        Settings.from_env(env | {"HOTLINE_TRUSTED_PROXIES": "proxy.local"})


async def test_an_address_is_locked_across_accounts(zhu: Client, app: web.Application) -> None:
    await give_password(app, "chen")
    for i in range(ADDRESS_LIMIT):
        await sign_in(zhu, f"guess{i}", "wrong-password")
    assert (await sign_in(zhu, "chen")).status == 429


async def test_idle_and_absolute_expiry(zhu: Client, clock: Clock) -> None:
    await sign_in(zhu, "zhu")
    clock.now += timedelta(hours=1, minutes=59)
    assert (await zhu.get("/console/cases", allow_redirects=False)).status == 200
    clock.now += timedelta(hours=2, minutes=1)  # idle too long
    assert (await zhu.get("/console/cases", allow_redirects=False)).status == 303

    await sign_in(zhu, "zhu")
    for _ in range(11):  # busy all day, never idle for long
        clock.now += timedelta(hours=1)
        assert (await zhu.get("/console/cases", allow_redirects=False)).status == 200
    clock.now += timedelta(hours=1, minutes=1)  # but no session outlives 12 hours
    assert (await zhu.get("/console/cases", allow_redirects=False)).status == 303


async def test_sign_out_ends_the_session(zhu: Client) -> None:
    cookie = (await sign_in(zhu, "zhu")).cookies["hotline_session"].value
    token = await console_token(zhu)
    out = await zhu.post("/console/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 303
    zhu.session.cookie_jar.clear()
    reused = await zhu.get(
        "/console/cases", headers={"Cookie": f"hotline_session={cookie}"}, allow_redirects=False
    )
    assert reused.status == 303


async def test_a_password_change_ends_every_other_session(
    zhu: Client, app: web.Application
) -> None:
    other: Client = TestClient(zhu.server)  # type: ignore[assignment]
    await other.start_server()
    try:
        await sign_in(other, "zhu")
        await sign_in(zhu, "zhu")
        token = await console_token(zhu)
        new = "another-long-password"
        form = {"csrf_token": token, "current": PASSWORD, "new": new, "confirm": new}
        resp = await zhu.post("/console/password", data=form)
        assert resp.status == 200 and "其他设备上的登录已退出" in await resp.text()
        assert (await zhu.get("/console/cases", allow_redirects=False)).status == 200
        assert (await other.get("/console/cases", allow_redirects=False)).status == 303
        assert await app[appkeys.PASSWORDS].verify(app[appkeys.STORE], "zhu", new) is not None
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong", "another-long-password", "another-long-password", "当前密码不正确"),
        (PASSWORD, "another-long-password", "different-long-password", "不一致"),
        (PASSWORD, "short", "short", "10 至 200"),
    ],
)
async def test_password_change_mistakes(
    zhu: Client, current: str, new: str, confirm: str, message: str
) -> None:
    await sign_in(zhu, "zhu")
    token = await console_token(zhu)
    form = {"csrf_token": token, "current": current, "new": new, "confirm": confirm}
    resp = await zhu.post("/console/password", data=form)
    assert resp.status == 400 and message in await resp.text()


async def test_the_current_password_is_guessed_no_more_than_at_sign_in(zhu: Client) -> None:
    """A console left signed in (or a stolen session) is no unlimited way to try a member's
    password: wrong current passwords count with failed sign-ins, the member's and the
    address's, and past the limit even the right one waits."""
    await sign_in(zhu, "zhu")
    token = await console_token(zhu)
    new = "another-long-password"
    for n in range(10):
        form = {"csrf_token": token, "current": f"guess-{n}", "new": new, "confirm": new}
        assert (await zhu.post("/console/password", data=form)).status == 400
    form = {"csrf_token": token, "current": PASSWORD, "new": new, "confirm": new}
    refused = await zhu.post("/console/password", data=form)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0
    assert "尝试次数过多" in await refused.text()
    other: Client = TestClient(zhu.server)  # type: ignore[assignment]
    await other.start_server()
    try:  # the same count as signing in: locked there too, and the password unchanged
        assert (await sign_in(other, "zhu")).status == 429
    finally:
        await other.close()


async def test_a_right_current_password_clears_the_attempt(zhu: Client) -> None:
    await sign_in(zhu, "zhu")
    token = await console_token(zhu)
    for _ in range(12):  # mistakes in the new password are no guesses at the current one
        form = {"csrf_token": token, "current": PASSWORD, "new": "short", "confirm": "short"}
        assert (await zhu.post("/console/password", data=form)).status == 400
    assert (await sign_in(zhu, "zhu")).status == 303


@pytest.mark.parametrize("token", [None, "", "forged"])
async def test_state_changes_need_the_session_csrf_token(zhu: Client, token: str | None) -> None:
    await sign_in(zhu, "zhu")
    data = {"action": "note", "text": "x"} | ({"csrf_token": token} if token is not None else {})
    resp = await zhu.post("/console/cases/AAAAAAA/act", data=data)
    assert resp.status == 403
    assert "csrf_token" in await resp.text()


async def test_login_form_needs_its_csrf_token(zhu: Client) -> None:
    resp = await zhu.post("/console/login", data={"member": "zhu", "password": PASSWORD})
    assert resp.status == 403


async def test_console_security_headers(zhu: Client) -> None:
    await sign_in(zhu, "zhu")
    resp = await zhu.get("/console/cases")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    assert resp.headers["Cache-Control"] == "no-store"  # personal data: kept by no cache


@pytest.mark.parametrize(
    "path", ["/console/reports.csv", "/console/reports.xlsx", "/console/events"]
)
async def test_streamed_answers_carry_the_security_headers(zhu: Client, path: str) -> None:
    """An export or the live stream sends its headers before the handler returns: they
    carry the security headers and no-store all the same."""
    await sign_in(zhu, "zhu")
    async with zhu.get(path) as resp:
        assert resp.status == 200
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"].startswith("no")


async def test_heads_manage_canned_replies_reps_get_403(zhu: Client, app: web.Application) -> None:
    await sign_in(zhu, "zhu")
    resp = await zhu.get("/console/replies")
    assert resp.status == 403 and "无权访问" in await resp.text()
    token = await console_token(zhu)
    denied = await zhu.post(
        "/console/replies", data={"csrf_token": token, "title": "t", "body": "b"}
    )
    assert denied.status == 403
    await give_password(app, "shen")
    await sign_in(zhu, "shen")
    token = await console_token(zhu)
    data = {"csrf_token": token, "title": "政策咨询", "body": "您好，相关政策请见……"}
    assert (await zhu.post("/console/replies", data=data)).status == 200  # the list, after 303
    assert "政策咨询" in await (await zhu.get("/console/replies")).text()


class TestBehindHttps:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, public_url="https://hotline.example.org")

    async def test_cookies_are_secure(self, zhu: Client) -> None:
        page = await zhu.get("/console/login")
        csrf_cookie = page.cookies["hotline_csrf"]
        assert csrf_cookie["secure"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        assert token
        # The test client speaks plain http, so it would hold back Secure cookies: send it.
        resp = await zhu.post(
            "/console/login",
            data={"csrf_token": token.group(1), "member": "zhu", "password": PASSWORD},
            headers={"Cookie": f"hotline_csrf={csrf_cookie.value}"},
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.cookies["hotline_session"]["secure"]


def test_member_password_command(tmp_path: Path) -> None:
    env = os.environ | {"HOTLINE_DATA_DIR": str(tmp_path)}
    env.pop("HOTLINE_CONFIG", None)
    cmd = [sys.executable, "-m", "hotline", "member", "password", "--demo"]
    ok = subprocess.run(
        [*cmd, "chen"], input="a-long-enough-pw\n", env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    short = subprocess.run([*cmd, "chen"], input="short\n", env=env, capture_output=True, text=True)
    assert short.returncode == 1 and "at least 10" in short.stderr
    ghost = subprocess.run(
        [*cmd, "ghost"], input="a-long-enough-pw\n", env=env, capture_output=True, text=True
    )
    assert ghost.returncode == 1 and "no member 'ghost'" in ghost.stderr


async def test_heads_edit_and_delete_canned_replies(zhu: Client, app: web.Application) -> None:
    await give_password(app, "shen")
    await sign_in(zhu, "shen")

    async def post(**fields: Any) -> Any:
        token = await console_token(zhu)
        return await zhu.post(
            "/console/replies", data={"csrf_token": token, **fields}, allow_redirects=False
        )

    assert (await post(title="政策咨询", body="您好，相关政策请见……")).status == 303
    [row] = await app[appkeys.STORE].fetch("SELECT id FROM canned_replies")
    reply_id = str(row["id"])
    resp = await post(edit=reply_id, title="政策咨询", body="您好，政策原文见附件。")
    assert resp.status == 303
    page = await (await zhu.get("/console/replies")).text()
    assert "政策原文见附件" in page and "相关政策请见" not in page
    for bad, field in (
        ({"edit": reply_id, "title": "", "body": "x"}, "title"),
        ({"edit": reply_id, "title": "t\x00", "body": "x"}, "title"),
        ({"edit": reply_id, "title": "t", "body": "x" * 2001}, "body"),
        ({"edit": "1; DROP", "title": "t", "body": "x"}, "edit"),
        ({"delete": "abc"}, "delete"),
    ):
        resp = await post(**bad)
        assert resp.status == 400 and field_named(field) in await resp.text()
    assert (await post(edit="999", title="t", body="x")).status == 404
    assert (await post(delete=reply_id)).status == 303
    assert await app[appkeys.STORE].fetch("SELECT id FROM canned_replies") == []
    assert (await post(delete=reply_id)).status == 404
