"""Heads manage the directory in a real browser: a member and a topic added from the
console, in force at once on the public form; the pages pass axe-core on a phone."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect

from hotline import appkeys
from tests.browser.axe import axe_violations
from tests.browser.test_console_browser import sign_in
from tests.web.console_helpers import give_password

pytestmark = pytest.mark.timeout(120)


async def test_a_head_adds_a_member_and_a_topic(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await give_password(app, "shen")
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, bypass_csp=True
    )
    page = await context.new_page()
    await sign_in(page, server, "shen")
    await page.click("details.menu summary")  # the heads' menu in the header
    await page.click("details.menu >> text=成员")
    await expect(page.locator("h1")).to_have_text("成员")
    assert await axe_violations(page) == []

    # A mistake first: the field is marked and described, nothing is stored.
    await page.fill("#f-id", "li")
    await page.fill("#f-phone", "12345")
    await page.click("form.directory-form button[type=submit]")
    await expect(page.locator("#f-name")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#e-phone")).to_contain_text("不是有效的电话号码")
    assert app[appkeys.DIRECTORY].config.member("li") is None

    await page.fill("#f-name", "李代表")
    await page.fill("#f-phone", "13800000009")
    await page.select_option("#f-role", "rep")
    await page.fill("#f-companies", "平湖新材料有限公司")
    await page.fill("#f-password", "li-first-password")
    await page.click("form.directory-form button[type=submit]")
    await expect(page.locator("h1")).to_contain_text("李代表")
    await expect(page.locator("[role=status]")).to_have_text("已添加。")
    assert await axe_violations(page) == []
    await page.screenshot(path=artifacts / "console-member.png", full_page=True)
    await page.goto(f"{server}/console/members")
    await expect(page.locator("table.directory")).to_contain_text("平湖新材料有限公司")
    await page.screenshot(path=artifacts / "console-members.png", full_page=True)

    await page.goto(f"{server}/console/categories")
    await page.fill("#f-code", "tax")
    await page.fill("#f-name_zh", "税费政策")
    await page.fill("#f-name_en", "Tax policy")
    await page.select_option("#f-department", "budget")
    await page.fill("#f-respond_within", "2h")
    await page.click("form.directory-form button[type=submit]")
    await expect(page.locator("[role=status]")).to_have_text("已添加。")
    await page.goto(f"{server}/submit")
    await expect(page.locator("#category")).to_contain_text("税费政策")
    await context.close()
