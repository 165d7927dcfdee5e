"""The public pages in a real browser: the kiosk (idle reset, retry after a server error),
the web form on a phone in both languages and by keyboard alone, a poster's QR code, and
zero axe-core violations on the form, the kiosk and the status page."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from aiohttp import web
from PIL import Image
from playwright.async_api import Browser, Page, Route, ViewportSize, expect

from hotline import appkeys
from tests.browser.axe import axe_violations
from tests.helpers import route_all
from tests.web.console_helpers import PASSWORD, give_password

pytestmark = pytest.mark.timeout(120)
PHONE: ViewportSize = {"width": 390, "height": 844}


async def kiosk_page(browser: Browser, server: str, app: web.Application) -> Page:
    _, token = await app[appkeys.KIOSKS].register("大厅", "shen", app[appkeys.CLOCK]())
    # bypass_csp only so that axe-core can be injected; the pages' own CSP is tested elsewhere.
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 1024, "height": 768}, bypass_csp=True
    )
    page = await context.new_page()
    await page.clock.install()
    await page.goto(f"{server}/kiosk?device={token}")
    await expect(page.locator("#kiosk-form")).to_be_visible()
    return page


async def test_kiosk_flow_with_a_retry_after_a_server_error(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    page = await kiosk_page(browser, server, app)
    assert await axe_violations(page) == []
    failures = {"left": 1}

    async def flaky(route: Route) -> None:
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            await route.fulfill(status=503, body="maintenance")
        else:
            await route.continue_()

    await page.route("**/kiosk", flaky)
    await page.get_by_text("畅通循环").click()  # a tile, by touch
    await page.fill("#text", "园区南门的货车掉头困难，请协调。")
    await page.click("#kiosk-form button[type=submit]")
    await page.clock.run_for(1500)  # the page's backoff before it tries again
    await expect(page.locator("#slip")).to_be_visible(timeout=10000)
    code = (await page.locator("#case-code").inner_text()).strip()
    assert failures["left"] == 0
    await page.screenshot(path=artifacts / "kiosk-slip.png", full_page=True)
    await route_all(app)
    assert await app[appkeys.STORE].cases.count() == 1  # one case, whatever the retries
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and case.channel == "kiosk" and case.category == "circulation"
    await page.context.close()


async def test_kiosk_clears_itself_after_a_minute_idle(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    page = await kiosk_page(browser, server, app)
    await page.fill("#text", "我的私人问题")
    await page.fill("#phone", "13900000001")
    await page.screenshot(path=artifacts / "kiosk.png", full_page=True)
    await page.clock.run_for(30_000)
    await expect(page.locator("#text")).to_have_value("我的私人问题")  # still in use
    await page.clock.run_for(61_000)
    await expect(page.locator("#text")).to_have_value("", timeout=5000)
    await expect(page.locator("#phone")).to_have_value("")
    await page.context.close()


async def test_assisted_mode_signs_the_member_out_when_idle(
    browser: Browser, server: str, app: web.Application
) -> None:
    await give_password(app, "chen")
    page = await kiosk_page(browser, server, app)
    await page.goto(f"{server}/console/login")
    await page.fill("#member", "chen")
    await page.fill("#password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.goto(f"{server}/kiosk")
    await expect(page.locator("#assisted")).to_contain_text("陈代表")
    await page.clock.run_for(61_000)
    await expect(page.locator("#kiosk-form")).to_be_visible(timeout=5000)
    await expect(page.locator("#assisted")).to_have_count(0)
    await page.context.close()


@pytest.mark.parametrize(("locale", "heading", "done"), [
    ("zh-CN", "提交诉求", "诉求已收到"),
    ("en-US", "Submit a request", "Request received"),
])  # fmt: skip
async def test_the_form_on_a_phone_in_both_languages(
    browser: Browser, server: str, artifacts: Path, locale: str, heading: str, done: str
) -> None:
    context = await browser.new_context(
        locale=locale, viewport=PHONE, is_mobile=True, bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(f"{server}/submit?src=gate")
    await expect(page.locator("h1")).to_have_text(heading)
    assert await axe_violations(page) == []
    await page.screenshot(path=artifacts / f"form-{locale}.png", full_page=True)
    await page.fill("#text", "园区路灯不亮" if locale == "zh-CN" else "The street lights are out")
    await page.click("form button[type=submit]")
    await expect(page.locator("h1")).to_have_text(done)
    code = (await page.locator("#case-code").inner_text()).strip()
    await page.click(f"a[href='/track/{code}']")
    await expect(page.locator("h1")).to_contain_text(code)
    assert await axe_violations(page) == []
    # The code typed in by hand, as from a slip: the footer's link, then the box.
    await page.click("#follow-link")
    assert await axe_violations(page) == []
    await page.fill("#code", "x")
    await page.click("form button[type=submit]")
    await expect(page.locator("#find-problem")).to_be_visible()
    assert await axe_violations(page) == []
    await page.fill("#code", code.lower())
    await page.click("form button[type=submit]")
    await expect(page.locator("h1")).to_contain_text(code)
    await context.close()


async def test_the_figures_read_as_a_board_on_a_phone(
    browser: Browser, server: str, artifacts: Path
) -> None:
    """/stats: each figure a labelled number in a grid, nothing wider than the phone."""
    context = await browser.new_context(
        locale="zh-CN", viewport=PHONE, is_mobile=True, bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(f"{server}/stats")
    assert await axe_violations(page) == []
    figures = page.locator(".figures-list").first
    assert await figures.evaluate("e => getComputedStyle(e).display") == "grid"
    number = page.locator(".figures-list dd").first
    assert await number.evaluate("e => getComputedStyle(e).fontWeight") == "700"
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await page.screenshot(path=artifacts / "stats-phone.png", full_page=True)
    await context.close()


async def test_the_form_works_with_the_keyboard_alone(browser: Browser, server: str) -> None:
    page = await browser.new_page(locale="zh-CN")
    await page.goto(f"{server}/submit")

    async def tab_to(selector: str) -> None:
        for _ in range(30):
            await page.keyboard.press("Tab")
            if await page.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"could not reach {selector} with Tab")

    await tab_to("#text")
    await page.keyboard.type("只用键盘提交的诉求")
    await tab_to("#category")
    await page.keyboard.press("ArrowDown")
    await tab_to("button[type=submit]")
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_have_text("诉求已收到")
    await page.close()


async def test_a_poster_qr_code_opens_the_form_with_its_tag(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await give_password(app, "shen")
    await app[appkeys.KIOSKS].add_tag("gate", "北门", "shen", app[appkeys.CLOCK]())
    page = await browser.new_page(locale="zh-CN")
    await page.goto(f"{server}/console/login")
    await page.fill("#member", "shen")
    await page.fill("#password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.goto(f"{server}/console/posters/gate")
    await page.screenshot(path=artifacts / "poster.png", full_page=True)
    shot = await page.locator("#poster-qr").screenshot()
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))
    assert found.text == f"{server}/submit?src=gate"
    await page.goto(found.text)  # and it opens the form with the tag
    assert await page.locator("input[name=src]").get_attribute("value") == "gate"
    await page.close()
