"""The console's lists in the store, on both engines: pages that neither skip nor repeat a
case while new ones arrive, the overdue view found in SQL exactly as the clocks say, and
search through each engine's full-text index (Chinese, company, case, odd characters)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from hotline.service.caselists import (
    PAGE,
    BadPosition,
    Filters,
    clocks,
    fill_due_times,
    list_cases,
    parse_position,
)
from hotline.service.cases import Intake, code_for, to_utc_text
from hotline.service.config import PointConfig, demo_config_path
from hotline.service.configfile import load_config
from hotline.service.store import Store
from hotline.service.store import caselists as store_caselists
from hotline.service.store.caselists import Listing
from hotline.service.store.database import Tx
from hotline.service.store.schema import OPEN_CASES
from hotline.service.workflow import OPEN

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
CONFIG: PointConfig = load_config(demo_config_path())


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    await opened.accounts.sync(CONFIG.members)
    yield opened
    await opened.close()


async def add(store: Store, n: int, at: datetime, **fields: object) -> str:
    code = code_for(b"test", f"web:{n}", 0)
    text = str(fields.pop("text", f"request {n}"))
    intake = Intake(key=f"web:{n}", channel="web", text=text, received_at=at,
                    language="zh-CN", **fields)  # type: ignore[arg-type]  # fmt: skip
    await store.cases.create(code, intake, "zhu", "on duty", at)
    return code


async def page_codes(
    store: Store, view: str, before: str = "", q: str = ""
) -> tuple[list[str], str | None]:
    page = await list_cases(store, CONFIG, Filters(view=view, before=before, q=q), "zhu", NOW)
    return [case.code for case, _ in page.rows], page.older


async def test_pages_show_every_case_once_while_new_ones_arrive(store: Store) -> None:
    # 130 cases, seven at a time sharing one receipt time: the order needs the id too.
    made = [await add(store, n, NOW - timedelta(minutes=n // 7)) for n in range(130)]
    seen: list[str] = []
    before = ""
    for extra in range(10):
        codes, older = await page_codes(store, "all", before)
        seen += codes
        # Between two pages, new requests arrive: they belong on the first page only.
        newest = await add(store, 1000 + extra, NOW + timedelta(minutes=1))
        if older is None:
            break
        before = older
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 130
    assert len(seen[:PAGE]) == PAGE
    first, _ = await page_codes(store, "all")
    assert first[0] == newest  # same receipt time as the other new ones, the highest id


async def test_a_page_position_that_was_never_given_is_refused(store: Store) -> None:
    at = "2026-11-24T03:00:00.000000Z"
    huge = f"{at}~{'9' * 40}"  # past any row id: refused, not sent to the database
    for bad in ("x", at, "2026-11-24T03:00:00Z~1", f"{at}~-1", f"{at}~", "2026-13-24~1", "~", huge):
        with pytest.raises(BadPosition):
            parse_position(bad)
        with pytest.raises(BadPosition):
            await page_codes(store, "all", bad)
    assert parse_position("2026-11-24T03:00:00.000000Z~12") == ("2026-11-24T03:00:00.000000Z", 12)


async def test_the_overdue_view_finds_in_sql_what_the_clocks_say(store: Store) -> None:
    """Cases on every side of each deadline: categories with targets of their own and
    without, answered or not, held, referred with a due date past or not; and older than
    any first page, which the view once missed."""
    codes = {}
    categories = [None, *(c.code for c in CONFIG.categories)]
    for n in range(120):
        at = NOW - timedelta(hours=n * 3)
        code = await add(store, n, at, category=categories[n % len(categories)])
        codes[code] = n
        changes: dict[str, object] = {}
        if n % 3 == 0:
            changes["first_response_at"] = to_utc_text(at + timedelta(minutes=5))
            changes["status"] = "acknowledged"
        if n % 5 == 0:
            changes["held_until"] = to_utc_text(NOW - timedelta(hours=n % 11))
        if n % 4 == 1:
            changes["status"] = "referred"
            due = NOW + timedelta(days=1) if n % 8 == 1 else NOW - timedelta(hours=1)
            changes["referral_due"] = to_utc_text(due)
        if n % 13 == 0:
            changes["status"] = "resolved"
        if changes:
            sets = ", ".join(f"{k} = :{k}" for k in changes)
            sql = f"UPDATE cases SET {sets} WHERE code = :code"  # noqa: S608 - names are ours
            params = {**changes, "code": code}

            async def change(db: Tx, sql: str = sql, params: dict[str, object] = params) -> None:
                await db.execute(sql, params)

            await store.write(change)
    # Each case's due times, as stored when it comes in (from its held time, too).
    assert await fill_due_times(store, CONFIG) == 120
    expected = []
    for code in sorted(codes, key=lambda c: codes[c]):  # newest first
        case = await store.cases.by_code(code)
        assert case is not None
        if case.status in OPEN and clocks(case, CONFIG, NOW).overdue:
            expected.append(code)
    found: list[str] = []
    before = ""
    while True:
        page, older = await page_codes(store, "overdue", before)
        found += page
        if older is None:
            break
        before = older
    assert 0 < len(expected) < 120
    assert found == expected


@pytest.fixture(params=[10_000, 2], ids=["few cases", "more than the recent window"])
def recent(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Searches read the newest cases first and ask the index when those fall short: with
    a window of 2, both ways are taken on the handful of cases below."""
    monkeypatch.setattr(store_caselists, "RECENT", request.param)
    return int(request.param)


async def test_search_finds_chinese_companies_and_odd_characters(store: Store, recent: int) -> None:
    light = await add(
        store, 1, NOW, text="厂区东门路灯不亮，夜班工人出入不便", company="嘉兴科技有限公司"
    )
    english = await add(store, 2, NOW, text="Street LIGHT broken near gate 3")
    percent = await add(store, 3, NOW, text="电费优惠50%的政策何时落实")
    quoted = await add(store, 4, NOW, text='他说"尽快处理"但没有下文')
    other = await add(store, 5, NOW, text="道路拥堵", company="甲公司")

    async def search(q: str) -> set[str]:
        codes, _ = await page_codes(store, "all", q=q)
        return set(codes)

    assert await search("路灯不亮") == {light}  # through the index
    assert await search("嘉兴科技") == {light}  # the company
    assert await search("科技有限") == {light}  # a part of its name
    assert await search("公司") == {light, other}  # two characters: their pair, and names
    # One case has it in its text, another in its company's name: both, newest first.
    said = await add(store, 6, NOW + timedelta(minutes=1), text="嘉兴科技有限公司门口积水")
    codes, _ = await page_codes(store, "all", q="嘉兴科技有限公司")
    assert codes == [said, light]
    assert await search("light BROKEN") == {english}  # case folded
    assert await search("路灯") == {light}  # two characters: their pair
    assert await search("li") == {english}  # a pair of letters, case folded
    assert await search("50") == {percent}  # of digits
    assert await search("亮，") == {light}  # with a comma: read, or (PostgreSQL) its pair
    assert await search("门路灯") == {light}  # three: the trigrams
    assert await search("灯亮") == set()  # both characters are there, not side by side
    assert await search("拥") == {other}
    assert await search("50%") == {percent}  # % is a character, not a wildcard
    assert await search('"尽快处理"') == {quoted}  # quotes are characters too
    assert await search("没有这个诉求") == set()
    assert await search(other.lower()) == {other}  # a code, as typed
    # The index follows edits of the text and the company.
    await store.write(lambda db: db.execute(
        "UPDATE cases SET company = '乙公司' WHERE code = :code", {"code": other}))  # fmt: skip
    assert await search("乙公司") == {other}
    assert await search("甲公司") == set()
    await store.write(lambda db: db.execute(
        "UPDATE cases SET text = '水管漏水' WHERE code = :code", {"code": other}))  # fmt: skip
    assert await search("漏水") == {other}
    assert await search("拥堵") == set()


async def test_a_search_matching_many_companies_finds_them_all(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a search reads the cases of the companies whose names match, or, past
    NAMES names, reads every case's company through its index: the same cases either way."""
    first = await add(store, 1, NOW, company="甲科技有限公司")
    second = await add(store, 2, NOW + timedelta(minutes=1), company="乙科技有限公司")
    said = await add(store, 3, NOW + timedelta(minutes=2), text="科技有限公司门口积水")
    await add(store, 4, NOW, company="丙纺织有限公司")
    names = await store.fetch("SELECT name FROM cases_search_companies ORDER BY name")
    assert [r["name"] for r in names] == sorted(
        ["甲科技有限公司", "乙科技有限公司", "丙纺织有限公司"]
    )
    monkeypatch.setattr(store_caselists, "RECENT", 1)  # the index, not the newest cases
    for most, walked in ((10, 10), (10, 1), (2, 2), (1, 1)):
        monkeypatch.setattr(store_caselists, "NAMES", most)
        monkeypatch.setattr(store_caselists, "WALKED_NAMES", walked)
        codes, _ = await page_codes(store, "all", q="科技有限")
        assert codes == [said, second, first], (most, walked)
        seen: list[str] = []  # a page of one at a time, each below the last
        before: tuple[str, int] | None = None
        while found := await store.lists.page(Listing(text="科技有限", before=before), 1):
            seen.append(found[0].code)
            before = (to_utc_text(found[0].received_at), found[0].id)
        assert seen == [said, second, first], (most, walked)
    codes, _ = await page_codes(store, "all", q="丁科技")
    assert codes == []


def test_the_open_cases_index_says_what_open_means() -> None:
    """The partial index `cases_open` (schema and migration 0002) and the in-work views
    serve the statuses workflow.OPEN names: a status added there needs a migration."""
    listed = ", ".join(f"'{status}'" for status in sorted(OPEN))
    assert f"status IN ({listed})" == OPEN_CASES


@pytest.mark.parametrize(
    ("field", "q"),
    [("text", "路灯不亮"), ("text", "路灯"), ("company", "嘉兴机械3号有限公司")],
    ids=["text", "two characters", "company"],
)
async def test_search_pages_show_each_match_once_in_order(
    store: Store, recent: int, field: str, q: str
) -> None:
    """A common word, or a whole company name, across more cases than a page: the pages
    hold every case that has it, newest first, once, however the window and the index
    share the work (the companies' names have an index of their own)."""
    matching = []
    for n in range(160):
        fields = {"text": "厂区路灯不亮", "company": "嘉兴机械3号有限公司"}
        if n % 3:
            fields = {"text": "道路拥堵", "company": f"嘉兴机械{n}号有限公司"}
        code = await add(store, n, NOW - timedelta(minutes=n // 4), **{field: fields[field]})
        if n % 3 == 0:
            matching.append(code)
    seen: list[str] = []
    before = ""
    while True:
        codes, older = await page_codes(store, "all", before, q=q)
        seen += codes
        if older is None:
            break
        before = older
    assert len(seen) == len(set(seen)) and set(seen) == set(matching)
    everything, position = [], ""
    while True:  # the same order as the unfiltered list
        codes, older = await page_codes(store, "all", position)
        everything += codes
        if older is None:
            break
        position = older
    assert seen == [c for c in everything if c in set(matching)]
