"""The reports over HTTP: who sees what, the figures on the page and the lists behind them,
the CSV and XLSX exports parsed back and compared with the page, the monthly summary, the
public /stats in both languages, bad input, and the demo point's believable months."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook

from hotline import appkeys
from hotline.service.demo.history import made_up
from hotline.service.reports import EXPORT_COLUMNS, build
from hotline.service.settings import Settings
from tests.helpers import Client, field_named
from tests.web.console_helpers import give_password, sign_in

NOVEMBER = "from=2026-11-01&to=2026-11-30"
PHONE = "+8613912345678"
SECRET_TEXT = "只有承办人能看的诉求原文"
SUBMITTER = "李先生"


async def _history(app: web.Application, count: int = 120) -> list[dict[str, Any]]:
    """Made-up months of the demo point, with a name, phone and text that must never leave
    the console in an export or on /stats."""
    config = app[appkeys.DIRECTORY].config
    now = app[appkeys.CLOCK]()
    rows = []
    for past in made_up(config, count, timedelta(days=90), now, seed=11, prefix="web-test"):
        rows.append(
            past.row | {"submitter_name": SUBMITTER, "submitter_phone": PHONE, "text": SECRET_TEXT}
        )
    await app[appkeys.STORE].cases.load_history(rows)
    return rows


@pytest.fixture
async def head(client: Client) -> Client:
    await _history(client.app)
    await give_password(client.app, "shen")
    await sign_in(client, "shen")
    return client


def _figure(page: str, measure: str) -> tuple[int, str]:
    """The first figure on the page that links to `measure`: (number, link)."""
    found = re.search(rf'<a href="([^"]*measure={measure}[^"]*)">(\d+)</a>', page)
    assert found, measure
    return int(found.group(2)), unescape(found.group(1))


async def test_the_reports_need_a_member(client: Client) -> None:
    for path in ("/console/reports", "/console/reports.csv", "/console/reports.xlsx",
                 "/console/reports/monthly"):  # fmt: skip
        resp = await client.get(path, allow_redirects=False)
        assert resp.status in (302, 303), path
        assert "/console/login" in resp.headers["Location"]


async def test_each_figure_links_to_the_cases_it_counts(head: Client) -> None:
    page = await (await head.get(f"/console/reports?{NOVEMBER}")).text()
    assert "2026-11-01 – 2026-11-30" in page
    checked = 0
    for measure in ("received", "response_met", "response_counted", "resolution_met",
                    "resolution_counted", "satisfied", "rated", "referred", "presidium",
                    "overdue", "not_counted"):  # fmt: skip
        number, link = _figure(page, measure)
        listed = await (await head.get(link)).text()
        total = re.search(r'data-total="(\d+)"', listed)
        assert total and int(total.group(1)) == number, (measure, link)
        checked += 1
    assert checked == 11
    # A breakdown's figure: the received of one channel.
    web_link = re.search(r'<a href="([^"]*channel=web[^"]*)">(\d+)</a>', page)
    assert web_link
    listed = await (await head.get(unescape(web_link.group(1)))).text()
    assert f'data-total="{web_link.group(2)}"' in listed


async def test_a_representative_sees_their_own_cases(client: Client) -> None:
    rows = await _history(client.app)
    await give_password(client.app, "chen")
    await sign_in(client, "chen")
    page = await (await client.get("/console/reports?period=this-year")).text()
    assert "仅本人承办的诉求。" in page  # the point speaks Chinese by default
    number, _ = _figure(page, "received")
    assert number == sum(1 for r in rows if r["assignee_id"] == "chen")


async def test_the_csv_export_is_the_page_s_cases_without_personal_data(head: Client) -> None:
    page = await (await head.get(f"/console/reports?{NOVEMBER}")).text()
    received, _ = _figure(page, "received")
    resp = await head.get(f"/console/reports.csv?{NOVEMBER}")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel on Chinese Windows
    text = raw.decode("utf-8-sig")
    for secret in (SECRET_TEXT, PHONE, SUBMITTER):
        assert secret not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0].keys()) == EXPORT_COLUMNS
    assert len(rows) == received > 0
    for row in rows:
        local = datetime.fromisoformat(row["received_at"])
        assert local.utcoffset() == timedelta(hours=8)  # ISO 8601 with the point's offset
        assert "2026-11-01" <= row["received_at"][:10] <= "2026-11-30"
        assert datetime.fromisoformat(row["first_response_due"]) > local
        assert row["presidium"] in ("0", "1") and row["reopened"].isdigit()
        assert row["closed_at"] == "" or datetime.fromisoformat(row["closed_at"]) >= local
    # The figures again, from the rows.
    presidium, _ = _figure(page, "presidium")
    assert sum(r["presidium"] == "1" for r in rows) == presidium
    rated = [int(r["rating"]) for r in rows if r["rating"]]
    satisfied, _ = _figure(page, "satisfied")
    assert sum(r >= 4 for r in rated) == satisfied
    assert len(rated) == _figure(page, "rated")[0]


async def test_the_xlsx_export_has_the_same_rows_and_figures(head: Client) -> None:
    page = await (await head.get(f"/console/reports?{NOVEMBER}")).text()
    csv_rows = list(
        csv.DictReader(io.StringIO((await (await head.get(
            f"/console/reports.csv?{NOVEMBER}")).read()).decode("utf-8-sig")))
    )  # fmt: skip
    resp = await head.get(f"/console/reports.xlsx?{NOVEMBER}")
    assert resp.status == 200
    assert resp.headers["Content-Type"].endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(await resp.read()), read_only=True)
    cases = list(book["cases"].iter_rows(values_only=True))
    assert cases[0] == EXPORT_COLUMNS
    assert [r[0] for r in cases[1:]] == [r["code"] for r in csv_rows]
    for row in cases[1:]:
        assert SECRET_TEXT not in row and PHONE not in row
        assert isinstance(row[EXPORT_COLUMNS.index("received_at")], datetime)
    about = {r[0]: r[1:] for r in book["about"].iter_rows(values_only=True)}
    assert about["timezone"][0] == "Asia/Shanghai"
    assert about["received"][0] == _figure(page, "received")[0] == len(csv_rows)
    assert about["response rate"][:2] == (
        _figure(page, "response_met")[0], _figure(page, "response_counted")[0]
    )  # fmt: skip


async def test_an_empty_breakdown_says_no_requests(head: Client) -> None:
    page = await (await head.get("/console/reports?from=2020-01-01&to=2020-01-31")).text()
    assert "此期间没有诉求。" in page and "调整" not in page  # not the roster's wording


async def test_bad_periods_are_refused_naming_the_field(head: Client) -> None:
    cases = [
        ("from=2026-11-01", "to"),
        ("to=2026-11-01", "from"),
        ("from=2026-02-30&to=2026-03-01", "from"),
        ("from=2026-11-02&to=2026-11-01", "to"),
        ("from=1999-01-01&to=2026-01-01", "to"),
        ("from=" + "9" * 5000 + "&to=2026-01-01", "from"),
        ("from=2026-11-01%00&to=2026-11-30", "from"),
        ("from=%E2%80%AE2026&to=2026-11-30", "from"),
        ("period=forever", "period"),
    ]
    for query, field in cases:
        for path in ("/console/reports", "/console/reports.csv", "/console/reports.xlsx"):
            resp = await head.get(f"{path}?{query}")
            body = await resp.text()
            assert resp.status == 400, (path, query, resp.status)
            assert field_named(field) in body, (path, query)
    months = [("2026-13", 400), ("x", 400), ("2026-11-01", 400), ("2026-10", 200),
              ("1900-01", 200), ("1899-12", 400), ("%EF%BC%92026-11", 400)]  # fmt: skip
    for month, status in months:
        resp = await head.get(f"/console/reports/monthly?month={month}")
        assert resp.status == status, month
    # The list behind a figure refuses a figure that is not one.
    resp = await head.get("/console/cases?view=all&measure=everything")
    assert resp.status == 400 and field_named("measure") in await resp.text()
    resp = await head.get("/console/cases?view=all&from=2026-11-01&to=2026-10-01")
    assert resp.status == 400 and field_named("to") in await resp.text()
    page = await (await head.get("/console/cases?view=all&from=2026-11-01")).text()
    banner = page.split('id="report-filter"')[1].split("</p>")[0]
    assert "收到时间 2026-11-01 起" in banner and 'href="/console/reports"' in banner


async def test_invalid_utf8_in_the_query_is_a_400(head: Client) -> None:
    resp = await head.get("/console/reports?from=%FF%FE&to=2026-11-30")
    assert resp.status == 400


async def test_the_monthly_summary_compares_with_the_month_before(head: Client) -> None:
    page = await (await head.get("/console/reports/monthly?month=2026-10")).text()
    assert "2026-10" in page and "2026-09" in page
    assert "提交主席团（工作建议机制）" in page
    assert page.count('<img src="data:image/svg+xml;base64,') == 4
    assert "<script" not in page.split("</head>")[1]  # no inline script in the body


async def test_stats_are_public_figures_in_both_languages(client: Client) -> None:
    await _history(client.app)
    resp = await client.get("/stats", headers={"Accept": "application/json"})
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"point", "name", "as_of", "this-month", "this-year"}
    year = body["this-year"]
    assert year["received"] == 120 and year["from"] == "2026-01-01"
    assert set(year["response_rate"]) == {"numerator", "denominator", "percent"}
    text = str(body)
    for secret in (SECRET_TEXT, PHONE, SUBMITTER, "chen", "陈代表"):
        assert secret not in text
    zh = await (await client.get("/stats?lang=zh-CN")).text()
    assert "联络点数据公开" in zh and "响应率" in zh and SECRET_TEXT not in zh
    rate = year["response_rate"]  # as every report writes a rate: "12/30, 40.0%"
    shown = f"{rate['numerator']}/{rate['denominator']},</small> {rate['percent']:.1f}%"
    assert shown in zh
    en = await (await client.get("/stats?lang=en")).text()
    assert "The point in figures" in en and "Resolution rate" in en
    assert PHONE not in en and SUBMITTER not in en


async def test_visits_that_find_the_stats_old_wait_for_one_count(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten visitors at once, the figures old: the month and the year are counted once (a
    year's count each would hold the database for every visitor)."""
    counted: list[str] = []
    real = build

    async def counting(*args: Any, **kw: Any) -> Any:
        counted.append(str(args[2].first))
        await asyncio.sleep(0.05)  # long enough for the others to come
        return await real(*args, **kw)

    monkeypatch.setattr("hotline.web.reports.build", counting)
    answers = await asyncio.gather(*(client.get("/stats?format=json") for _ in range(10)))
    assert [a.status for a in answers] == [200] * 10
    assert sorted(counted) == ["2026-01-01", "2026-11-01"]
    # Old again: one visit counts, the others are served the old figures meanwhile.
    cache = client.app[appkeys.STATS_CACHE]
    cache.update({day: (0.0, figures) for day, (_, figures) in cache.items()})
    counted.clear()
    answers = await asyncio.gather(*(client.get("/stats?format=json") for _ in range(10)))
    assert [a.status for a in answers] == [200] * 10
    assert sorted(counted) == ["2026-01-01", "2026-11-01"]


@pytest.fixture
def demo_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, demo=True)


async def test_the_demo_reads_like_the_article(demo_settings: Settings, clock: Any) -> None:
    """Months of requests, a dozen through the presidium: the first run shows real reports."""
    from hotline.app import create_app

    app = create_app(demo_settings, clock=clock)
    async with TestClient(TestServer(app)) as client:
        await sign_in(client, "shen", "jiachuang-demo")
        page = await (await client.get("/console/reports?period=this-year")).text()
        received, _ = _figure(page, "received")
        presidium, _ = _figure(page, "presidium")
        assert received >= 30 and presidium == 12
        assert page.count('<img src="data:image/svg+xml;base64,') == 4
        for measure in ("response_met", "resolution_met", "satisfied"):
            assert _figure(page, measure)[0] > 0
        stats = await (await client.get("/stats?format=json")).json()
        assert stats["this-year"]["presidium"] == 12


async def test_exports_never_carry_a_formula(client: Client) -> None:
    """A company typed as a formula stays text in both exports (CSV injection)."""
    config, now = client.app[appkeys.DIRECTORY].config, client.app[appkeys.CLOCK]()
    evil = '=HYPERLINK("http://example.invalid/","点我")'
    [past] = made_up(config, 1, timedelta(hours=2), now, prefix="formula")
    await client.app[appkeys.STORE].cases.load_history([past.row | {"company": evil}])
    await give_password(client.app, "shen")
    await sign_in(client, "shen")
    text = (await (await client.get(f"/console/reports.csv?{NOVEMBER}")).read()).decode()
    [row] = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert row["company"] == "'" + evil
    data = await (await client.get(f"/console/reports.xlsx?{NOVEMBER}")).read()
    sheet = load_workbook(io.BytesIO(data))["cases"]
    cell = sheet.cell(row=2, column=EXPORT_COLUMNS.index("company") + 1)
    assert (cell.value, cell.data_type) == (evil, "s")


def test_export_columns_are_the_contract() -> None:
    assert ",".join(EXPORT_COLUMNS) == (
        "code,channel,received_at,category,department,assignee,source_tag,company,status,"
        "first_response_at,first_response_due,resolved_at,resolution_due,reopened,rating,"
        "presidium,closed_at"
    )
