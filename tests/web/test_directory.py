"""Members, departments and topics managed in the console by heads and admins: roles, bad
input, and every change taking effect at once (sign-in, routing, the public form)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hotline import appkeys
from hotline.service.accounts import account
from tests.helpers import Client, form_fields, route_all
from tests.web.console_helpers import PASSWORD, act, console_token, give_password, sign_in


@pytest.fixture
async def shen(client: Client, app: web.Application) -> Client:
    """Signed in as the standing head (role head)."""
    await give_password(app, "shen")
    assert (await sign_in(client, "shen")).status == 303
    return client


async def post(client: Client, path: str, **fields: Any) -> Any:
    token = await console_token(client)
    return await client.post(path, data={"csrf_token": token, **fields}, allow_redirects=False)


async def submit(client: Client, **fields: str) -> None:
    """A request through the public web form."""
    resp = await client.post("/submit", data=await form_fields(client) | fields)
    assert resp.status == 201, await resp.text()


async def overrides(app: web.Application) -> list[Any]:
    return await app[appkeys.STORE].fetch("SELECT * FROM directory_overrides")


async def test_lists_show_the_config_files_entries(shen: Client) -> None:
    members = await (await shen.get("/console/members")).text()
    assert "沈点长" in members and "standing head" not in members and "常设点长" in members
    assert "轮值第 1 位" in members and "未设密码" in members and "已设密码" in members
    departments = await (await shen.get("/console/departments?lang=en")).text()
    assert "预算工委" in departments and "Business support" in departments
    topics = await (await shen.get("/console/categories?lang=en")).text()
    assert "Safety and hazards" in topics and "respond 1h" in topics


async def test_representatives_are_refused_with_a_403_page(
    client: Client, app: web.Application
) -> None:
    await give_password(app, "zhu")
    await sign_in(client, "zhu")
    for path in ("/console/members", "/console/departments", "/console/categories/other"):
        resp = await client.get(path)
        assert resp.status == 403 and "只有点长和管理员" in await resp.text()
    token = await console_token(client)
    resp = await client.post(
        "/console/members", data={"csrf_token": token, "id": "li", "name": "李", "role": "rep"}
    )
    assert resp.status == 403
    assert await overrides(app) == []


async def test_changes_need_a_session_and_a_csrf_token(shen: Client, app: web.Application) -> None:
    resp = await shen.post("/console/departments", data={"id": "tax", "name": "税务"})
    assert resp.status == 403 and "csrf_token" in await resp.text()
    shen.session.cookie_jar.clear()
    resp = await shen.post("/console/departments", data={"id": "tax", "name": "税务"})
    assert resp.status == 401
    assert await overrides(app) == []


async def test_a_member_added_in_the_console_signs_in_and_is_routed_to(
    shen: Client, app: web.Application, client: Client
) -> None:
    resp = await post(
        shen, "/console/members", id="li", name="李代表", phone="138 0000 0009", role="rep",
        companies="平湖新材料有限公司\n\n平湖新材料有限公司", password="li-first-password",
    )  # fmt: skip
    assert resp.status == 303 and resp.headers["Location"] == "/console/members/li?done=added"
    page = await (await shen.get(resp.headers["Location"])).text()
    assert "已添加" in page and "控制台添加" in page and "+8613800000009" in page
    member = app[appkeys.DIRECTORY].config.member("li")
    assert member is not None and member.companies == ("平湖新材料有限公司",)
    found = await account(app[appkeys.STORE], "li")
    assert found is not None and found.active and found.name == "李代表"
    # A request naming the paired company goes to the new member.
    await submit(client, text="厂房审批进度咨询", company="平湖新材料有限公司")
    await route_all(app)
    [row] = await app[appkeys.STORE].fetch("SELECT assignee_id FROM cases")
    assert row["assignee_id"] == "li"
    shen.session.cookie_jar.clear()
    assert (await sign_in(shen, "li", "li-first-password")).status == 303
    assert "厂房审批进度咨询" in await (await shen.get("/console/cases?view=mine")).text()


@pytest.mark.parametrize(
    ("path", "fields", "field", "message"),
    [
        ("/console/members", {"id": "", "name": "李", "role": "rep"}, "id", "此项为必填"),
        ("/console/members", {"id": "Li Si", "name": "李", "role": "rep"}, "id", "小写字母"),
        ("/console/members", {"id": "li", "name": "  ", "role": "rep"}, "name", "此项为必填"),
        (
            "/console/members",
            {"id": "li", "name": "李" * 101, "role": "rep"},
            "name",
            "最多 100 字",
        ),
        ("/console/members", {"id": "li", "name": "李\x07", "role": "rep"}, "name", "控制字符"),
        (
            "/console/members",
            {"id": "li", "name": "李", "role": "rep", "phone": "12345"},
            "phone",
            "不是有效的电话号码",
        ),
        ("/console/members", {"id": "li", "name": "李", "role": "boss"}, "role", "请选择一个角色"),
        (
            "/console/members",
            {"id": "li", "name": "李", "role": "rep", "companies": "\n".join(map(str, range(51)))},
            "companies",
            "最多 50",
        ),
        (
            "/console/members",
            {"id": "li", "name": "李", "role": "rep", "password": "short"},
            "password",
            "密码长度须为 10 至 200",
        ),
        ("/console/members", {"id": "chen", "name": "陈", "role": "rep"}, "id", "已被占用"),
        (
            "/console/members",
            {"id": "li", "name": "李", "role": "rep", "companies": "平湖嘉创精密机械有限公司"},
            "companies",
            "已与 陈代表 结对",
        ),
        (
            "/console/categories",
            {"code": "tax", "name_zh": "", "name_en": "Tax"},
            "name_zh",
            "此项为必填",
        ),
        (
            "/console/categories",
            {"code": "tax", "name_zh": "税", "name_en": "Tax", "department": "nowhere"},
            "department",
            "未知部门 nowhere",
        ),
        (
            "/console/categories",
            {"code": "tax", "name_zh": "税", "name_en": "Tax", "respond_within": "soon"},
            "respond_within",
            "不是有效的时长",
        ),
        (
            "/console/categories",
            {"code": "other", "name_zh": "税", "name_en": "Tax"},
            "code",
            "已被占用",
        ),
        (
            "/console/categories",
            {"code": "tax", "name_zh": "税", "name_en": "Tax", "resolve_within": "9000000d"},
            "resolve_within",
            "不是有效的时长",
        ),
    ],
)
async def test_bad_input_is_refused_whole(
    shen: Client, app: web.Application, path: str, fields: dict[str, str], field: str,
    message: str,
) -> None:  # fmt: skip
    resp = await post(shen, path, **fields)
    text = await resp.text()
    assert resp.status == 400
    assert message in text, text
    assert f'id="e-{field}"' in text or field == "id"
    assert await overrides(app) == []
    assert app[appkeys.DIRECTORY].config.member("li") is None
    assert app[appkeys.DIRECTORY].config.category("tax") is None


async def test_files_and_repeated_fields_are_refused(shen: Client, app: web.Application) -> None:
    token = await console_token(shen, "/console/departments")
    upload = await shen.post(
        "/console/departments",
        data={"csrf_token": token, "id": "tax", "name": io.BytesIO(b"\x89PNG")},
    )
    assert upload.status == 400 and "不接受上传文件" in await upload.text()
    twice = await shen.post(
        "/console/departments", data=[("csrf_token", token), ("id", "tax"), ("id", "tax2"),
                                      ("name", "税务")],
    )  # fmt: skip
    assert twice.status == 400 and "重复" in await twice.text()
    assert await overrides(app) == []


async def test_only_admins_manage_admins(
    shen: Client, app: web.Application, client: Client
) -> None:
    resp = await post(shen, "/console/members", id="ops", name="运维", role="admin")
    assert resp.status == 403 and "只有管理员" in await resp.text()
    resp = await post(shen, "/console/members/admin", name="改名", role="admin", do="save")
    assert resp.status == 403
    resp = await post(shen, "/console/members/admin", do="password", password="x" * 12)
    assert resp.status == 403
    resp = await post(shen, "/console/members/shen", name="沈点长", role="rep", do="save")
    assert resp.status == 403 and "自己的角色" in await resp.text()
    assert await overrides(app) == []
    await give_password(app, "admin")
    shen.session.cookie_jar.clear()
    await sign_in(shen, "admin")
    resp = await post(shen, "/console/members", id="ops", name="运维", role="admin")
    assert resp.status == 303
    resp = await post(shen, "/console/members/zhu", name="朱代表", role="head", do="save")
    assert resp.status == 303
    found = await account(app[appkeys.STORE], "zhu")
    assert found is not None and found.role == "head"


async def test_a_member_edits_their_own_name_but_not_their_role(shen: Client) -> None:
    resp = await post(
        shen, "/console/members/shen", name="沈国强点长", role="head", phone="", do="save"
    )
    assert resp.status == 303
    assert "沈国强点长" in await (await shen.get("/console/cases")).text()


async def test_removing_a_member_ends_their_access(
    shen: Client, app: web.Application, client: Client
) -> None:
    await post(shen, "/console/members", id="li", name="李代表", role="rep")
    await give_password(app, "li")
    async with second_browser(client) as other, second_browser(client) as idle:
        assert (await sign_in(other, "li")).status == 303
        assert (await sign_in(idle, "li")).status == 303  # not used again until re-added
        resp = await post(shen, "/console/members/li", do="remove")
        assert resp.status == 303 and resp.headers["Location"] == "/console/members?removed=li"
        assert "li 已移除" in await (await shen.get("/console/members?removed=li")).text()
        gone = await other.get("/console/cases", allow_redirects=False)
        assert gone.status == 303  # the session is refused: the account is inactive
        assert (await sign_in(other, "li")).status == 401
        # Re-added (even as a head), li starts afresh: no old password, no old session.
        resp = await post(shen, "/console/members", id="li", name="李代表", role="head")
        assert resp.status == 303
        assert (await idle.get("/console/members", allow_redirects=False)).status == 303
        assert (await sign_in(idle, "li")).status == 401
        assert "未设密码" in await (await shen.get("/console/members")).text()
    # A notice names only an entry that really is removed.
    assert "zhu 已移除" not in await (await shen.get("/console/members?removed=zhu")).text()


async def test_a_refused_change_keeps_the_stored_entry_on_the_form(shen: Client) -> None:
    resp = await post(shen, "/console/members/chen", do="remove", seen="0")
    page = await resp.text()
    assert resp.status == 400 and "轮值名单" in page
    assert 'value="陈代表"' in page and "平湖嘉创精密机械有限公司</textarea>" in page


async def test_a_form_older_than_the_entry_is_refused_with_409(shen: Client) -> None:
    first = await post(shen, "/console/departments/budget", name="财经工委", do="save", seen="0")
    assert first.status == 303
    stale = await post(shen, "/console/departments/budget", name="预算", do="save", seen="0")
    page = await stale.text()
    assert stale.status == 409 and "刚被他人修改" in page and 'value="财经工委"' in page
    bad = await post(shen, "/console/departments/budget", name="预算", do="save", seen="x")
    assert bad.status == 400


@asynccontextmanager
async def second_browser(client: Client) -> AsyncIterator[Any]:
    """Another browser on the same running service, with its own cookies."""
    jar = aiohttp.CookieJar(unsafe=True)  # the test server is an IP address
    async with aiohttp.ClientSession(str(client.make_url("/")), cookie_jar=jar) as other:
        yield other


async def test_members_on_duty_or_with_open_cases_cannot_be_removed(
    shen: Client, app: web.Application, client: Client
) -> None:
    resp = await post(shen, "/console/members/chen", do="remove")
    assert resp.status == 400 and "轮值名单" in await resp.text()
    resp = await post(shen, "/console/members/admin", do="remove")
    assert resp.status == 403
    resp = await post(shen, "/console/members/shen", do="remove")
    assert resp.status == 403
    await post(shen, "/console/members", id="li", name="李代表", role="rep", companies="甲公司")
    await submit(client, text="用电问题", company="甲公司")
    await route_all(app)
    resp = await post(shen, "/console/members/li", do="remove")
    assert resp.status == 400 and "1 件未办结" in await resp.text()
    assert app[appkeys.DIRECTORY].config.member("li") is not None


async def test_setting_a_members_password_signs_them_out(
    shen: Client, app: web.Application
) -> None:
    resp = await post(shen, "/console/members/zhu", do="password", password="short")
    assert resp.status == 400 and 'id="e-password"' in await resp.text()
    resp = await post(shen, "/console/members/zhu", do="password", password="zhu-new-password")
    assert resp.status == 303 and resp.headers["Location"].endswith("done=password")
    assert "密码已设置" in await (await shen.get(resp.headers["Location"])).text()
    shen.session.cookie_jar.clear()
    assert (await sign_in(shen, "zhu", PASSWORD)).status == 401
    assert (await sign_in(shen, "zhu", "zhu-new-password")).status == 303


async def test_departments_and_topics_take_effect_everywhere(
    shen: Client, app: web.Application, client: Client
) -> None:
    assert (await post(shen, "/console/departments", id="tax", name="税务联络组")).status == 303
    resp = await post(
        shen, "/console/categories", code="tax", name_zh="税费政策", name_en="Tax policy",
        department="tax", respond_within="2h", resolve_within="5d",
    )  # fmt: skip
    assert resp.status == 303
    form = await (await client.get("/submit")).text()
    assert "税费政策" in form
    english = await (await client.get("/submit?lang=en")).text()
    assert "Tax policy" in english
    assert app[appkeys.DIRECTORY].config.targets_for("tax")[0].total_seconds() == 7200
    # The console's filters offer the new department and topic at once.
    await submit(client, text="出口退税咨询", category="tax")
    await route_all(app)
    listed = await (await shen.get("/console/cases?view=all&lang=zh-CN")).text()
    assert "税务联络组" in listed and listed.count("税费政策") == 2  # filter, and the row
    # A department a topic refers to cannot be removed; the topic can, then the department.
    resp = await post(shen, "/console/departments/tax", do="remove")
    assert resp.status == 400 and "tax" in await resp.text()
    resp = await post(shen, "/console/categories/tax", do="remove")
    assert resp.status == 400 and "1 件未办结的诉求属于此类别" in await resp.text()
    [case] = await app[appkeys.STORE].fetch("SELECT code FROM cases")
    assert (await act(shen, case["code"], "withdraw", text="企业已自行解决")).status == 303
    assert (await post(shen, "/console/categories/tax", do="remove")).status == 303
    assert "税费政策" not in await (await client.get("/submit")).text()
    assert (await post(shen, "/console/departments/tax", do="remove")).status == 303
    assert app[appkeys.DIRECTORY].config.department("tax") is None


async def test_a_department_with_open_referrals_stays(
    shen: Client, app: web.Application, client: Client
) -> None:
    await post(shen, "/console/departments", id="tax", name="税务联络组")
    await submit(client, text="出口退税咨询")
    await route_all(app)
    [case] = await app[appkeys.STORE].fetch("SELECT code FROM cases")
    await give_password(app, "chen")
    async with second_browser(client) as member:
        await sign_in(member, "chen")
        await act(member, case["code"], "acknowledge")
        resp = await act(
            member, case["code"], "refer", department="tax", due="2026-12-01", text="请核实"
        )
        assert resp.status == 303, await resp.text()
    resp = await post(shen, "/console/departments/tax", do="remove")
    assert resp.status == 400 and "1 件未办结" in await resp.text()


async def test_an_edit_can_be_undone_back_to_the_file(shen: Client, app: web.Application) -> None:
    resp = await post(shen, "/console/departments/budget", name="财经工委", do="save")
    assert resp.status == 303
    page = await (await shen.get(resp.headers["Location"])).text()
    assert "已保存" in page and "控制台修改" in page and "财经工委" in page
    assert (await post(shen, "/console/departments/budget", do="revert")).status == 303
    config = app[appkeys.DIRECTORY].config
    assert config.department("budget") is not None
    assert config.department("budget").name == "预算工委"  # type: ignore[union-attr]
    page = await (await shen.get("/console/departments/budget")).text()
    assert "shen" in page and "改回配置文件" in page  # the history keeps both changes
    resp = await post(shen, "/console/departments/budget", do="revert")
    assert resp.status == 400
    assert len(await entries_log(app)) == 2


async def entries_log(app: web.Application) -> list[Any]:
    return await app[appkeys.STORE].fetch("SELECT * FROM directory_log")


async def test_unknown_entries_and_actions(shen: Client) -> None:
    assert (await shen.get("/console/members/nobody")).status == 404
    resp = await post(shen, "/console/departments/budget", do="explode")
    assert resp.status == 400
    resp = await post(shen, "/console/departments/nobody", name="x", do="save")
    assert resp.status == 404
