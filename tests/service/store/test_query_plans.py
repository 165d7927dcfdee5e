"""The reads on hot paths — `/track`, the SMS keywords, the console's lists, the timed work's
scans, a case's page — find their rows through an index on both engines, never by reading a
whole table of cases, events, messages or outbox rows. Each read is run as the code runs it
(its SQL captured), then asked for its plan: SQLite's EXPLAIN QUERY PLAN, and PostgreSQL's
EXPLAIN with sequential scans priced out, so a Seq Scan there means no index could serve."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection

from hotline.service.store import Store
from hotline.service.store.caselists import Listing
from hotline.service.timed import IN_WORK, UNACKNOWLEDGED
from hotline.service.workflow import OPEN

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
BIG = ("cases", "events", "messages", "outbox")
OPEN_NOW = tuple(sorted(OPEN))

Read = Callable[[Store], Awaitable[object]]

HOT: dict[str, Read] = {
    "by code (/track, console, STATUS)": lambda s: s.cases.by_code("ABCDEFG"),
    "a number's newest (STATUS)": lambda s: s.cases.latest_from("+8613900000001"),
    "a number's pending rating": lambda s: s.cases.rating_pending_for("+8613900000001"),
    "unacknowledged (escalation)": lambda s: s.cases.with_status(UNACKNOWLEDGED),
    "a member's cases in work (handoff)": lambda s: s.cases.with_status(IN_WORK, "chen"),
    "referrals overdue": lambda s: s.cases.referrals_overdue(NOW),
    "unrated since": lambda s: s.cases.unrated_since(NOW),
    "a case's events": lambda s: s.cases.events(1),
    "a case's messages": lambda s: s.cases.messages(1),
    "a case's texts": lambda s: s.outbox.for_case(1),
    "console: open": lambda s: s.lists.listing(Listing(statuses=OPEN_NOW), 300),
    "console: mine": lambda s: s.lists.listing(Listing(statuses=OPEN_NOW, assignee="chen"), 300),
    "console: a topic's open": lambda s: s.lists.listing(
        Listing(statuses=OPEN_NOW, category="infrastructure"), 300
    ),
}
# Known gaps (issue 13): a LIKE over the text has no index to use until search moves to
# full-text (FTS5 trigram, pg_trgm), and "all" has no index on received_at alone.
GAPS: dict[str, Read] = {
    "console: search": lambda s: s.lists.listing(Listing(code="ABCDEFG", text="ABCDEFG"), 300),
    "console: all": lambda s: s.lists.listing(Listing(), 300),
}


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    yield opened
    await opened.close()


async def _reads(store: Store, read: Read) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) `read` sends."""
    sent: list[tuple[str, Any]] = []
    fetch = store.db.fetch

    async def capture(sql: str, params: Any = None) -> Any:
        sent.append((sql, params))
        return await fetch(sql, params)

    store.db.fetch = capture  # type: ignore[method-assign]
    try:
        await read(store)
    finally:
        del store.db.fetch
    assert sent, "the read sent no query"
    return sent


def _sqlite_scans(rows: list[Any]) -> list[str]:
    """Whole-table reads of a big table in a SQLite plan: a SCAN (of the table or of a whole
    index), where a SEARCH would look rows up. Queries name cases `c`."""
    found = []
    for row in rows:
        match = re.match(r"SCAN (\w+)", row["detail"])
        if match and match.group(1) in (*BIG, "c"):
            found.append(row["detail"])
    return found


def _pg_scans(plan: dict[str, Any]) -> list[str]:
    """Whole-table reads of a big table in a PostgreSQL plan tree: a scan node with no index
    condition (a Seq Scan, or an index read end to end)."""
    found = []
    scans = ("Seq Scan", "Index Scan", "Index Only Scan")
    unconditioned = "Index Cond" not in plan
    if plan.get("Node Type") in scans and plan.get("Relation Name") in BIG and unconditioned:
        found.append(f"{plan['Node Type']} on {plan['Relation Name']}")
    for child in plan.get("Plans", []):
        found += _pg_scans(child)
    return found


async def _full_scans(store: Store, read: Read, engine: str) -> list[str]:
    scans: list[str] = []
    for sql, params in await _reads(store, read):
        if engine == "sqlite":
            scans += _sqlite_scans(await store.fetch("EXPLAIN QUERY PLAN " + sql, params))
            continue

        def explain(conn: Connection, sql: str = sql, params: Any = params) -> Any:
            conn.exec_driver_sql("SET enable_seqscan = off")
            try:
                return conn.execute(text("EXPLAIN (FORMAT JSON) " + sql), params or {}).scalar()
            finally:
                conn.exec_driver_sql("RESET enable_seqscan")

        found = await store.db.run_sync(explain)
        plan = json.loads(found) if isinstance(found, str) else found
        scans += _pg_scans(plan[0]["Plan"])
    return scans


@pytest.mark.parametrize("name", sorted(HOT))
async def test_a_hot_read_uses_an_index(store: Store, engine: str, name: str) -> None:
    assert await _full_scans(store, HOT[name], engine) == [], name


@pytest.mark.xfail(strict=True, reason="search and the unfiltered list scan cases (issue 13)")
@pytest.mark.parametrize("name", sorted(GAPS))
async def test_known_gaps_still_scan(store: Store, engine: str, name: str) -> None:
    assert await _full_scans(store, GAPS[name], engine) == [], name
