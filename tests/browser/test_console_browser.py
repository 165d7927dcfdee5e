"""The console in a real browser: a case arrives live and is worked to a closed loop."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Route, expect

from hotline import appkeys
from hotline.queue import keys
from hotline.service.cases import Intake
from hotline.web import console
from tests.web.console_helpers import PASSWORD, give_password

pytestmark = pytest.mark.timeout(120)


async def sign_in(page: Page, server: str, member: str, password: str = PASSWORD) -> None:
    await page.goto(f"{server}/console/login")
    await page.fill("#member", member)
    await page.fill("#password", password)
    await page.click("form button[type=submit]")


async def zhu_on_a_new_case(
    browser: Browser, server: str, app: web.Application, key: str
) -> tuple[Page, str]:
    """A new request, and zhu signed in on its page (Chinese); the page and the code."""
    await give_password(app, "zhu")
    intake = Intake(key, "web", "东门路灯不亮", app[appkeys.CLOCK](), "zh-CN")
    code = (await app[appkeys.INTAKE].submit(intake)).code
    page = await browser.new_page(locale="zh-CN")
    await sign_in(page, server, "zhu")
    await page.goto(f"{server}/console/cases/{code}")
    return page, code


async def do(page: Page, action: str, **fields: str) -> None:
    form = page.locator(f"form[data-action={action}]")
    for selector, value in fields.items():
        field = form.locator(f"[name={selector}]")
        if await field.evaluate("e => e.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)
    await form.locator("button[type=submit]").click()
    await page.wait_for_load_state()


async def test_a_case_arrives_live_and_is_worked_to_a_closed_loop(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await give_password(app, "zhu")
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, server, "zhu")
    await page.goto(f"{server}/console/cases?view=open")
    await expect(page.locator("body[data-live=on]")).to_be_attached(timeout=5000)

    intake = Intake(
        key="web:browser-1", channel="web", text="园区北门路灯不亮，晚上很危险。",
        received_at=app[appkeys.CLOCK](), language="zh-CN", category="safety",
        phone="+8613900000009",
    )  # fmt: skip
    code = (await app[appkeys.INTAKE].submit(intake)).code
    row = page.locator(f'tr[data-code="{code}"]')
    await expect(row).to_be_visible(timeout=3000)  # no reload: pushed by server-sent events
    await expect(page.locator("#new-count")).to_have_text("+1")
    await page.screenshot(path=artifacts / "console-list.png", full_page=True)

    await row.locator("a.code").click()
    await expect(page.locator("#case-status")).to_have_text("已交代表办理")
    await do(page, "acknowledge")
    await expect(page.locator("#case-status")).to_have_text("代表已受理")
    await do(page, "refer", department="urban", due="2026-12-01", text="请城建环资工委协调")
    await expect(page.locator("#case-status")).to_have_text("已交办相关部门")
    await do(page, "answer", text="已安排维修，三日内修复。")
    await expect(page.locator("#case-status")).to_have_text("已答复")
    # An outcome of two lines with a long address: kept in lines, wrapped on a phone.
    long_link = "https://www.example.gov.cn/zwgk/zcwj/2026/notice_" + "abcdefghij" * 6 + ".html"
    await do(page, "resolve", text=f"路灯已修复。\n详见 {long_link}")
    await expect(page.locator("#case-status")).to_have_text("已解决")
    await page.screenshot(path=artifacts / "console-case.png", full_page=True)

    public = await browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    track = await public.new_page()
    await track.goto(f"{server}/track/{code}")
    assert await track.evaluate("document.documentElement.scrollWidth") <= 390
    assert "\n详见" in await track.locator("#outcome").inner_text()
    await track.check("input[name=rating][value='5']")
    await track.click("#rating button[type=submit]")
    await expect(track.locator("#status")).to_have_text("已办结")
    await expect(track.locator(".notice")).to_contain_text("5 分")
    await track.screenshot(path=artifacts / "track-closed.png", full_page=True)

    await page.reload()
    await expect(page.locator("#case-status")).to_have_text("已办结")
    await page.set_viewport_size({"width": 390, "height": 844})  # on a phone: no sideways
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await context.close()
    await public.close()


async def live_open_list(browser: Browser, server: str, app: web.Application) -> Page:
    """zhu's open list, its live updates on."""
    await give_password(app, "zhu")
    page = await browser.new_page(locale="zh-CN")
    await sign_in(page, server, "zhu")
    await page.goto(f"{server}/console/cases?view=open")
    await expect(page.locator("body[data-live=on]")).to_be_attached(timeout=5000)
    return page


async def test_a_burst_of_new_cases_refreshes_the_list_a_few_times_not_once_each(
    browser: Browser, server: str, app: web.Application
) -> None:
    """A storm's batch is one live event per case: the open list is fetched again one
    fetch at a time, at most once a second, and still ends up showing every new case."""
    page = await live_open_list(browser, server, app)
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "partial=1" in r.url else None)
    now = app[appkeys.CLOCK]()
    codes = [
        (await app[appkeys.INTAKE].submit(
            Intake(f"web:burst-{i}", "web", f"第{i}号路灯不亮", now, "zh-CN")
        )).code
        for i in range(40)
    ]  # fmt: skip
    for code in codes:
        await expect(page.locator(f'tr[data-code="{code}"]')).to_be_visible(timeout=5000)
    await expect(page.locator("#new-count")).to_have_text("+40")
    assert 1 <= len(fetched) <= 6, fetched  # one per event was 40
    await page.close()


async def test_a_failed_refresh_of_the_list_is_tried_again(
    browser: Browser, server: str, app: web.Application
) -> None:
    """The fetch after a live event fails (the network blinked): it is tried again a few
    seconds on, without another event, and the new case shows."""
    page = await live_open_list(browser, server, app)
    failed: list[str] = []

    async def fail_the_first(route: Route) -> None:
        if not failed:
            failed.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    await page.route("**/console/cases?*partial=1*", fail_the_first)
    intake = Intake("web:retried", "web", "北门路灯不亮", app[appkeys.CLOCK](), "zh-CN")
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await expect(page.locator(f'tr[data-code="{code}"]')).to_be_visible(timeout=15000)
    assert failed  # the first fetch did fail
    await page.close()


async def test_a_session_ended_meanwhile_says_so_instead_of_filling_the_list_with_sign_in(
    browser: Browser, server: str, app: web.Application
) -> None:
    """The session expires (or the member signs out in another tab) while the list is open:
    the next refresh lands on the sign-in page. The list keeps what it showed, a notice says
    the page no longer updates, and its link signs in back to this page."""
    page = await live_open_list(browser, server, app)
    rows = await page.locator("tr[data-code]").count()
    await page.context.clear_cookies()  # the session is gone
    intake = Intake("web:after-expiry", "web", "南门路灯不亮", app[appkeys.CLOCK](), "zh-CN")
    await app[appkeys.INTAKE].submit(intake)
    notice = page.locator("#signed-out")
    await expect(notice).to_be_visible(timeout=10000)
    await expect(notice).to_contain_text("登录已失效")
    await expect(page.locator("body[data-live=off]")).to_be_attached()
    assert await page.locator("[data-live-list] form, [data-live-list] input").count() == 0
    assert await page.locator("tr[data-code]").count() == rows
    await notice.locator("a").click()
    back = re.escape("/console/login?next=%2Fconsole%2Fcases%3Fview%3Dopen")
    await expect(page).to_have_url(re.compile(back + "$"))
    await page.close()


async def test_a_case_page_left_open_says_when_its_session_ended(
    browser: Browser, server: str, app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed out elsewhere while a case page is open (it has no list to refresh): its live
    stream ends, and the page says so before a reply is typed into it and refused."""
    monkeypatch.setattr(console, "SESSION_CHECK", 0.2)
    page, code = await zhu_on_a_new_case(browser, server, app, "web:left-open")
    await expect(page.locator("body[data-live=on]")).to_be_attached(timeout=5000)
    notice = page.locator("#signed-out")
    assert not await notice.is_visible()
    redis = app[appkeys.REDIS]
    ended = [key async for key in redis.scan_iter(keys.SESSION + "*")]
    await redis.delete(*ended)  # signed out in another tab
    await expect(notice).to_be_visible(timeout=15000)
    await expect(notice).to_contain_text("登录已失效")
    await expect(page.locator("body[data-live=off]")).to_be_attached()
    await notice.locator("a").click()
    back = re.escape(f"/console/login?next=%2Fconsole%2Fcases%2F{code}")
    await expect(page).to_have_url(re.compile(back + "$"))
    await page.close()


async def test_a_clock_just_past_due_says_under_a_minute(
    browser: Browser, server: str, app: web.Application
) -> None:
    """Seconds either side of a due time read "under a minute", never "0 minutes"."""
    page, _ = await zhu_on_a_new_case(browser, server, app, "web:clock")
    clock = page.locator(".clock[data-due]").first
    due = datetime.fromisoformat(await clock.get_attribute("data-due") or "")
    for offset, said in (
        (20, "已超时 不到 1 分钟"),
        (-20, "剩余 不到 1 分钟"),
        (90, "已超时 2 分钟"),
    ):
        await page.clock.set_fixed_time(due + timedelta(seconds=offset))
        await page.reload()
        await expect(clock).to_contain_text(said)
    await page.close()


async def test_sign_in_locks_after_ten_failures(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await give_password(app, "chen")
    page = await browser.new_page(locale="zh-CN")
    for _ in range(10):
        await sign_in(page, server, "chen", "wrong-password")
        await expect(page.locator("#login-error")).to_have_text("账号或密码错误。")
    await sign_in(page, server, "chen")  # even the right password, while locked
    await expect(page.locator("#login-error")).to_have_text("登录失败次数过多，请稍后再试。")
    await page.screenshot(path=artifacts / "console-locked.png")
    await page.close()


async def test_a_form_without_its_csrf_token_is_refused(
    browser: Browser, server: str, app: web.Application
) -> None:
    page, code = await zhu_on_a_new_case(browser, server, app, "web:browser-2")
    await expect(page.locator("#case-status")).to_be_visible()
    await page.evaluate(
        "document.querySelector('form[data-action=acknowledge] [name=csrf_token]').remove()"
    )
    await page.locator("form[data-action=acknowledge] button").click()
    # Named as people call it, in the page's language: not the raw "csrf_token".
    await expect(page.locator("main")).to_contain_text("表单安全码：缺失或有误，请刷新页面")
    assert "csrf_token" not in await page.locator("main").inner_text()
    await page.goto(f"{server}/console/cases/{code}")
    await expect(page.locator("#case-status")).to_have_text("已交代表办理")  # unchanged
    await page.close()
