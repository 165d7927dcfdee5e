"""A themed reception end to end in a real browser, in Chinese and in English: a head
schedules it, a business finds it on a phone, gets its problems named, signs up and can take
it to a calendar, a deputy enters a request raised there on a phone, and afterwards the
event's page says how many were raised and where they stand. axe-core finds nothing on the
public pages; screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, ViewportSize, expect

from hotline import appkeys
from hotline.service.receptions import Plan
from tests.browser.axe import axe_violations
from tests.browser.test_console_browser import sign_in
from tests.helpers import Clock
from tests.web.console_helpers import give_password

pytestmark = pytest.mark.timeout(180)
PHONE: ViewportSize = {"width": 390, "height": 844}
WORDS = {
    "zh-CN": {"schedule": "安排", "enter": "录入现场诉求", "signed": "报名成功",
              "required": "必填", "raised": "共提出 1 件诉求", "theme": "优化营商环境主题接待"},
    "en": {"schedule": "Schedule", "enter": "Enter requests raised here",
           "signed": "You are signed up", "required": "required",
           "raised": "1 raised", "theme": "Business environment reception"},
}  # fmt: skip


async def clean(page: Page) -> None:
    violations = await axe_violations(page)
    assert violations == [], violations


async def open_page(browser: Browser, lang: str, phone: bool = False) -> Page:
    viewport: ViewportSize = PHONE if phone else {"width": 1280, "height": 900}
    # bypass_csp only so that axe-core can be injected; the pages' own CSP is tested elsewhere.
    context = await browser.new_context(locale=lang, viewport=viewport, bypass_csp=True)
    return await context.new_page()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_reception_from_plan_to_figures(
    browser: Browser, server: str, app: web.Application, clock: Clock, artifacts: Path, lang: str
) -> None:
    words = WORDS[lang]
    await give_password(app, "shen")
    await give_password(app, "chen")
    suffix = "zh" if lang == "zh-CN" else "en"

    # A head schedules it for this afternoon (the clock says 11:00 at the point).
    head = await open_page(browser, lang)
    await sign_in(head, server, "shen")
    await head.goto(f"{server}/console/receptions?lang={'en' if lang == 'en' else 'zh-CN'}")
    form = head.locator("#plan-form")
    await form.locator("#r-topic").fill(words["theme"])
    await form.locator("#r-place").fill("嘉创智谷联络点二楼会议室")
    await form.locator("input[name=date]").fill("2026-11-24")
    await form.locator("input[name=start]").fill("15:00")
    await form.locator("input[name=end]").fill("17:00")
    await form.locator("input[name=deputies][value=chen]").check()
    await form.locator("input[name=departments][value=budget]").check()
    await form.locator("#r-capacity").fill("10")
    await form.get_by_role("button", name=words["schedule"]).click()
    await expect(head.locator("h1")).to_have_text(words["theme"])
    reception = head.url.rstrip("/").rsplit("/", 1)[1]
    await head.screenshot(path=artifacts / f"reception-console-{suffix}.png", full_page=True)

    # A business finds it on a phone and signs up; an empty form names every field first.
    business = await open_page(browser, lang, phone=True)
    await business.goto(f"{server}/receptions")
    await clean(business)
    await business.get_by_role("link", name=words["theme"]).click()
    await expect(business.locator("#signup")).to_be_visible()
    await clean(business)
    await business.locator("#signup button[type=submit]").click()
    for field in ("company", "name", "phone", "text"):
        await expect(business.locator(f"#{field}-error")).to_be_visible()
    await clean(business)
    await business.fill("#company", "嘉兴恒创电子有限公司")
    await business.fill("#name", "李经理")
    await business.fill("#phone", "139 0000 0011")
    await business.fill("#text", "希望协调企业用工招聘。")
    await business.locator("#signup button[type=submit]").click()
    await expect(business.locator("#signed-up")).to_contain_text(words["signed"])
    await clean(business)
    await business.screenshot(path=artifacts / f"reception-signed-up-{suffix}.png", full_page=True)
    ics = await business.request.get(f"{server}/receptions/{reception}.ics")
    assert ics.status == 200 and "BEGIN:VEVENT" in await ics.text()

    # During the event a deputy enters a request raised there, on a phone.
    clock.now += timedelta(hours=4, minutes=30)  # 15:30
    deputy = await open_page(browser, lang, phone=True)
    await sign_in(deputy, server, "chen")
    await deputy.goto(f"{server}/console/receptions/{reception}")
    await deputy.get_by_role("link", name=words["enter"]).click()
    await deputy.fill("#e-company", "嘉兴恒创电子有限公司")
    await deputy.fill("#e-text", "园区南门夜间照明不足。")
    await deputy.locator("#entry-form button[type=submit]").click()
    await expect(deputy.locator("#recorded")).to_be_visible()
    await deputy.screenshot(path=artifacts / f"reception-entry-{suffix}.png", full_page=True)
    code = (await deputy.locator("#recorded a").inner_text()).strip()
    for _ in range(100):  # the in-process router stores it
        if await app[appkeys.STORE].cases.by_code(code) is not None:
            break
        await business.wait_for_timeout(100)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.reception_id == int(reception) and case.channel == "walk-in"

    # Afterwards the public page counts what was raised, never what it said.
    clock.now += timedelta(hours=2)
    await business.goto(f"{server}/receptions/{reception}")
    await expect(business.locator("#standing")).to_contain_text(words["raised"])
    assert "照明" not in await business.content()
    await clean(business)
    await business.screenshot(path=artifacts / f"reception-after-{suffix}.png", full_page=True)
    await sign_in(head, server, "shen")  # hours later: the console asks again
    await head.goto(f"{server}/console/reports?reception={reception}")
    await expect(head.locator("#reception-filter")).to_be_visible()
    for page in (head, business, deputy):
        await page.context.close()


async def test_a_head_withdraws_a_sign_up_in_two_steps(
    browser: Browser, server: str, app: web.Application, clock: Clock, artifacts: Path
) -> None:
    """The business called: the head opens the event, asks to withdraw its sign-up, confirms,
    and the place is free again; the business is texted."""
    book = app[appkeys.RECEPTIONS]
    starts = clock.now + timedelta(days=2)
    plan = Plan("助企帮扶主题接待", "", "联络点会议室", starts, starts + timedelta(hours=2),
                ("chen",), (), 5)  # fmt: skip
    reception = await book.schedule(plan, "shen")
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None
    given = {"company": "嘉兴恒创电子有限公司", "contact": "李经理", "phone": "+8613900000011",
             "raise_text": "希望协调企业用工招聘。"}  # fmt: skip
    await book.sign_up(found, given, "zh-CN")
    await give_password(app, "shen")
    head = await open_page(browser, "zh-CN")
    await sign_in(head, server, "shen")
    await head.goto(f"{server}/console/receptions/{reception}")
    await expect(head.locator("#seats")).to_contain_text("1")
    row = head.locator("#signups tr[data-signup]")
    confirm = row.get_by_role("button", name="取消该报名并短信告知")
    await expect(confirm).to_be_hidden()  # one click alone withdraws nothing
    await row.get_by_text("取消报名…").click()
    await clean(head)
    await head.screenshot(path=artifacts / "reception-withdraw.png", full_page=True)
    await confirm.click()
    await expect(head.locator("#signups tr[data-signup]")).to_have_count(0)
    await expect(head.locator("#seats")).to_contain_text("0")
    kept = head.locator("#withdrawals tbody tr")  # who withdrew whom, and when
    await expect(kept).to_have_count(1)
    await expect(kept).to_contain_text("嘉兴恒创电子有限公司")
    await expect(kept).to_contain_text("沈点长")
    await clean(head)
    texts = await app[appkeys.STORE].fetch(
        "SELECT to_number, body FROM outbox WHERE purpose_key LIKE 'reception-withdrawn:%'"
    )
    assert [t["to_number"] for t in texts] == ["+8613900000011"]
    await head.context.close()
