"""The reports in a real browser: the page with its charts (drawn, no script, no error, no
accessibility violation), a figure followed to its cases, and the monthly summary printed to
PDF on A4 in one or two pages. Screenshots and the PDF land in test-artifacts/."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, expect
from pypdf import PdfReader

from hotline import appkeys
from hotline.service.demo.history import made_up
from tests.browser.axe import axe_violations
from tests.browser.test_console_browser import sign_in
from tests.web.console_helpers import give_password

pytestmark = pytest.mark.timeout(120)

A4 = (595, 842)  # points


async def _history(app: web.Application) -> None:
    config = app[appkeys.DIRECTORY].config
    past = made_up(config, 160, timedelta(days=100), app[appkeys.CLOCK](), seed=5, prefix="b")
    await app[appkeys.STORE].cases.load_history([p.row for p in past])


async def test_the_reports_page_and_a_figure_s_cases(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await _history(app)
    await give_password(app, "shen")
    context = await browser.new_context(
        locale="zh-CN", viewport={"width": 1280, "height": 900}, bypass_csp=True
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await sign_in(page, server, "shen")
    await page.goto(f"{server}/console/reports?period=this-quarter")
    await expect(page.locator("h1")).to_contain_text("统计报表")
    charts = page.locator("figure.chart img")
    await expect(charts).to_have_count(4)
    for n in range(4):  # each chart decoded and drawn, with its text alternative
        chart = charts.nth(n)
        assert await chart.evaluate("img => img.complete && img.naturalWidth > 0")
        assert len(await chart.get_attribute("alt") or "") > 10
    await page.screenshot(path=artifacts / "reports.png", full_page=True)
    assert await axe_violations(page) == []
    assert errors == []

    received = page.locator(".kpi").first.locator("a")
    count = await received.inner_text()
    await received.click()
    await expect(page.locator("[data-total]")).to_have_attribute("data-total", count)
    await expect(page.locator("#report-filter")).to_be_visible()
    await context.close()


async def test_the_monthly_summary_prints_on_a4(
    browser: Browser, server: str, app: web.Application, artifacts: Path
) -> None:
    await _history(app)
    await give_password(app, "shen")
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await sign_in(page, server, "shen")
    await page.goto(f"{server}/console/reports/monthly?month=2026-10")
    await expect(page.locator("h1")).to_contain_text("2026年10月")
    await expect(page.locator(".monthly-charts img")).to_have_count(4)
    await page.screenshot(path=artifacts / "reports-monthly.png", full_page=True)
    pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
    (artifacts / "reports-monthly.pdf").write_bytes(pdf)
    pages = PdfReader(BytesIO(pdf)).pages
    assert 1 <= len(pages) <= 2
    for sheet in pages:
        size = (round(float(sheet.mediabox.width)), round(float(sheet.mediabox.height)))
        assert size == A4
    text = "".join(p.extract_text() for p in pages)
    assert "提交主席团" in text and "响应率" in text
    assert "打印或存为" not in text  # the print button is not printed
    # How a printed page looks: the print stylesheet, screenshotted at A4's width.
    await page.emulate_media(media="print")
    await page.set_viewport_size({"width": 794, "height": 1123})
    await page.screenshot(path=artifacts / "reports-monthly-print.png", full_page=True)
    await context.close()
