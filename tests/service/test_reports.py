"""The reports' figures on both engines, against hand-built cases at every edge of each
definition (DESIGN.md "Reports"): no denominator, a target met to the second or missed by
one, not yet passed, reopened after a resolution, ratings 3 and 4, withdrawn and rejected.
Each figure is also checked against the console list behind it, and the kept months of a
year's report against a fresh count after a change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.service import reports
from hotline.service.caselists import Filters, list_cases
from hotline.service.cases import code_for, from_utc_text, to_utc_text
from hotline.service.casework import referral_due
from hotline.service.config import PointConfig, demo_config_path
from hotline.service.configfile import load_config
from hotline.service.demo.history import made_up
from hotline.service.periods import (
    BadPeriod,
    Period,
    month,
    month_before,
    parse_month,
    parse_period,
    preset,
)
from hotline.service.store import Store
from hotline.service.store.reports import Measures, Scope

CONFIG: PointConfig = load_config(demo_config_path())
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
NOVEMBER = month(2026, 11)
RESPOND = timedelta(hours=4)  # the demo point's targets for a topic without its own
RESOLVE = timedelta(days=15)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(db_url)
    await opened.accounts.sync(CONFIG.members)
    yield opened
    await opened.close()


_made = 0


def case(received: datetime, **columns: Any) -> dict[str, Any]:
    """A stored case's columns: received at `received`, topic "projects" (the point's
    default targets), due times from those targets; `columns` as given (times as
    datetimes)."""
    global _made
    _made += 1
    key = f"report-test:{_made}"
    row: dict[str, Any] = {
        "code": code_for(b"reports", key, 0),
        "intake_key": key,
        "channel": "web",
        "status": "assigned",
        "text": "测试诉求",
        "language": "zh-CN",
        "category": "projects",
        "assignee_id": "chen",
        "received_at": received,
        "created_at": received,
        "updated_at": received,
        "first_response_due": received + RESPOND,
        "resolution_due": received + RESOLVE,
    } | columns
    return {k: to_utc_text(v) if isinstance(v, datetime) else v for k, v in row.items()}


async def load(store: Store, *rows: dict[str, Any]) -> list[str]:
    await store.cases.load_history(list(rows))
    return [row["code"] for row in rows]


async def figures(store: Store, period: Period = NOVEMBER, **kw: Any) -> reports.Report:
    return await reports.build(store, CONFIG, period, NOW, **kw)


async def listed(store: Store, measure: str, *, period: Period = NOVEMBER, **dims: str) -> int:
    """How many cases the console's list behind a figure holds."""
    return await listed_by(store, measure, dims, period)


async def listed_by(
    store: Store, measure: str, dims: dict[str, str], period: Period = NOVEMBER
) -> int:
    filters = Filters(
        view="all", since=str(period.first), until=str(period.last), measure=measure, **dims
    )
    page = await list_cases(store, CONFIG, filters, "shen", NOW)
    assert page.total is not None
    return page.total


async def test_a_period_with_no_cases_has_no_rates(store: Store) -> None:
    report = await figures(store)
    assert report.totals["received"] == 0
    for rate in (report.totals.response, report.totals.resolution, report.totals.satisfaction):
        assert (rate.num, rate.den, rate.percent, str(rate)) == (0, 0, None, "—")
    assert report.median_response is None and report.median_resolution is None
    assert [b.counts["received"] for b in report.buckets] == [0] * 30  # every day, empty


@pytest.mark.parametrize(
    ("num", "den", "shown"),
    [(29, 400, "29/400, 7.3%"), (1, 16, "1/16, 6.3%"), (1, 3, "1/3, 33.3%"),
     (2, 3, "2/3, 66.7%"), (0, 7, "0/7, 0.0%"), (7, 7, "7/7, 100.0%"), (0, 0, "—")],
)  # fmt: skip
def test_a_rate_is_rounded_half_up_as_chinese_reports_do(num: int, den: int, shown: str) -> None:
    """四舍五入: a half goes up (round() and "%.1f" round 7.25 to 7.2, half to even)."""
    rate = reports.Rate(num, den)
    assert str(rate) == shown
    assert rate.fraction()["percent"] == (float(shown.split(", ")[1][:-1]) if den else None)


async def test_the_response_rate_at_every_edge(store: Store) -> None:
    at = NOW - timedelta(days=2)
    due = at + RESPOND
    await load(
        store,
        case(at, status="acknowledged", first_response_at=due),  # on the second: met
        case(at, status="acknowledged", first_response_at=due + timedelta(seconds=1)),  # late
        case(at),  # never answered, target passed: counted, not met
        case(NOW - timedelta(hours=1)),  # target not passed yet: not counted
        case(NOW - timedelta(hours=1), status="acknowledged",
             first_response_at=NOW - timedelta(minutes=30)),  # answered early: met
        case(at, status="withdrawn"),  # not counted
        case(at, status="rejected"),  # not counted
    )  # fmt: skip
    report = await figures(store)
    assert report.totals["received"] == 7
    assert (report.totals.response.num, report.totals.response.den) == (2, 4)
    assert str(report.totals.response) == "2/4, 50.0%"
    assert report.totals["not_counted"] == 2
    for measure, expected in (("response_met", 2), ("response_counted", 4), ("received", 7)):
        assert await listed(store, measure) == expected


async def test_the_resolution_rate_at_every_edge(store: Store) -> None:
    at = NOW - timedelta(days=20)  # the 15-day target has passed for these
    recent = NOW - timedelta(days=3)  # and not for these
    await load(
        store,
        case(at, status="closed", resolved_at=at + RESOLVE),  # on the second: met
        case(at, status="closed", resolved_at=at + RESOLVE + timedelta(seconds=1)),  # late
        case(at, status="referred"),  # unresolved, target passed: counted
        case(recent),  # unresolved, target not passed: not counted
        case(recent, status="resolved", resolved_at=recent + timedelta(days=1)),  # met
        # Reopened after a resolution (resolved_at cleared), target not passed: counted as
        # resolved before, not met.
        case(recent, status="reopened", reopens=1),
        # Reopened, then resolved again within the target: met.
        case(recent, status="resolved", reopens=1, resolved_at=recent + timedelta(days=2)),
        case(at, status="withdrawn"),
    )  # fmt: skip
    report = await figures(store)
    assert (report.totals.resolution.num, report.totals.resolution.den) == (3, 6)
    assert await listed(store, "resolution_met") == 3
    assert await listed(store, "resolution_counted") == 6


async def test_withdrawn_and_rejected_requests_count_as_they_stood_then(store: Store) -> None:
    """Their clocks stop when they are withdrawn or rejected: spam rejected in time counts
    nowhere; one left past its target first counts as late (withdrawing it does not take
    a miss out of the rates); one answered first counts as answered."""
    at = NOW - timedelta(days=20)
    respond, resolve = at + RESPOND, at + RESOLVE
    hour = timedelta(hours=1)
    await load(
        store,
        case(at, status="rejected", closed_at=at + hour),  # spam, in time: nowhere
        case(at, status="withdrawn", closed_at=respond + hour),  # past the first target
        case(at, status="withdrawn", closed_at=resolve + hour),  # past both
        case(at, status="rejected", first_response_at=at + hour, closed_at=at + 2 * hour),
    )  # fmt: skip
    report = await figures(store)
    assert report.totals["not_counted"] == 4
    assert (report.totals.response.num, report.totals.response.den) == (1, 3)
    assert (report.totals.resolution.num, report.totals.resolution.den) == (0, 1)
    for measure, expected in (("response_counted", 3), ("response_met", 1),
                              ("resolution_counted", 1), ("resolution_met", 0)):  # fmt: skip
        assert await listed(store, measure) == expected, measure
    assert report.median_response == 60.5 * 60  # the one answered (its minute's middle)


async def test_a_referral_past_due_when_its_request_is_withdrawn_is_late_in_the_share(
    store: Store,
) -> None:
    """ "Past due, no answer" and the on-time share agree: withdrawn after its due date, a
    referral is late in both (before, it was past due with a share of "—")."""
    at = NOW - timedelta(days=12)
    due = NOW - timedelta(days=5)
    [code] = await load(store, case(at, status="acknowledged", first_response_at=at))
    await act(store, code, at + timedelta(hours=1), refer("budget", due),
              department_id="budget", referral_due=due)  # fmt: skip
    await act(store, code, due + timedelta(days=1), ("withdraw", "withdrawn", {}),
              closed_at=due + timedelta(days=1))  # fmt: skip
    budget = dict((await figures(store)).referrals)["budget"]
    assert (budget.referral.num, budget.referral.den, budget["referral_late"]) == (0, 1, 1)
    assert await listed(store, "referral_counted", department="budget") == 1


async def test_the_satisfaction_rate_counts_4_and_5_of_the_ratings_given(store: Store) -> None:
    at = NOW - timedelta(days=5)
    done = {"status": "closed", "resolved_at": at + timedelta(days=1)}
    await load(
        store,
        *(case(at, rating=r, **done) for r in (1, 2, 3, 4, 5, 5)),
        case(at, **done),  # not rated: not in the denominator
    )
    report = await figures(store)
    assert (report.totals.satisfaction.num, report.totals.satisfaction.den) == (3, 6)
    assert str(report.totals.satisfaction) == "3/6, 50.0%"
    assert await listed(store, "satisfied") == 3 and await listed(store, "rated") == 6


async def test_history_loaded_with_its_log_credits_each_rating(store: Store) -> None:
    """Past cases loaded with their events (the demo's months, a point's records): each
    rating counts, credited to the member the case was with when it came, and the stored
    `rated` events name that member as casework writes them."""
    at = NOW - timedelta(days=5)
    row = case(at, status="closed", rating=4, assignee_id="shen", resolved_at=at)
    log: list[tuple[datetime, str, str, str | None, dict[str, Any]]] = [
        (at, "received", "received", None, {}),
        (at, "assigned", "assigned", None, {"to": "chen", "reason": "on-duty"}),
        (at + timedelta(hours=1), "reassign", "assigned", "shen", {"to": "zhu"}),
        (at + timedelta(days=1), "rated", "reopened", None,
         {"rating": 1, "source": "sms", "escalated_to": "shen"}),
        (at + timedelta(days=2), "rated", "closed", None, {"rating": 4, "source": "sms"}),
    ]  # fmt: skip
    await store.cases.load_history([row], [log])
    report = await figures(store)
    assert str(report.totals.satisfaction) == "1/2, 50.0%"
    members = {key: (c["rated"], c["satisfied"]) for key, c in report.groups["member"]}
    assert members == {"shen": (1, 1), "zhu": (1, 0)}
    assert await listed(store, "rated", member="zhu") == 1
    assert await listed(store, "satisfied", member="zhu") == 0
    assert await listed(store, "rated", member="chen") == 0
    stored = await store.cases.by_code(row["code"])
    assert stored is not None
    credited = [e.detail.get("member") for e in await store.cases.events(stored.id)
                if e.kind == "rated"]  # fmt: skip
    assert credited == ["zhu", "shen"]


async def test_referrals_per_department_with_their_on_time_share(store: Store) -> None:
    at = NOW - timedelta(days=12)
    due = NOW - timedelta(days=2)
    later = NOW + timedelta(days=2)
    ref = {"department_id": "budget", "referral_due": due}
    await load(
        store,
        case(at, status="responded", referral_answered_at=due, **ref),  # on its due time
        case(at, status="responded", referral_answered_at=due + timedelta(hours=1), **ref),
        case(at, status="referred", **ref),  # no answer, past due: late
        case(at, status="referred", department_id="urban", referral_due=later),  # not due
        case(at, status="acknowledged", presidium=1),
        # Taken back while waiting, before the due date: neither on time nor late.
        case(at, status="assigned", **ref),  # reassigned
        case(at, status="withdrawn", **ref),
    )
    report = await figures(store)
    by_department = dict(report.groups["department"])
    referrals = dict(report.referrals)
    budget, urban = referrals["budget"], referrals["urban"]
    assert by_department["budget"]["referred"] == 5
    assert (budget["referrals"], budget.referral.num, budget.referral.den) == (5, 1, 3)
    assert budget["referral_late"] == 1
    assert await listed(store, "referral_counted", department="budget") == 3
    assert (urban["referrals"], urban.referral.den, urban["referral_late"]) == (1, 0, 0)
    assert by_department[None]["received"] == 1
    assert [key for key, _ in report.referrals] == ["budget", "urban"]  # most first
    assert report.totals["presidium"] == 1
    assert await listed(store, "referral_late", department="budget") == 1
    assert await listed(store, "referred", department="-") == 0  # "-": not referred
    assert await listed(store, "received", department="-") == 1


async def act(
    store: Store, code: str, at: datetime, event: tuple[Any, ...], **columns: Any
) -> None:
    """A member's step on a case as casework writes it: its columns and its event."""
    stored = await store.cases.by_code(code)
    assert stored is not None
    kind, status, detail = event
    updates = {"status": status, "updated_at": at} | columns
    values = {k: to_utc_text(v) if isinstance(v, datetime) else v for k, v in updates.items()}
    assert await store.cases.transition(stored, values, (kind, status, "shen", detail), at)


def refer(department: str, due: datetime) -> tuple[str, str, dict[str, str]]:
    return "refer", "referred", {"department": department, "due": to_utc_text(due)}


async def test_every_referral_counts_for_its_department(store: Store) -> None:
    """A case referred to one department and then another counts for both: the first let
    its due date pass and was taken back (late), the second answered in time. A referral
    taken back before its due date is neither; a later due date given to the same
    department before the first passed is the same referral; a reassign keeps it."""
    at = NOW - timedelta(days=12)
    first_due, second_due = NOW - timedelta(days=8), NOW - timedelta(days=1)
    not_yet = NOW + timedelta(days=2)
    late, extended, moved, reassigned = await load(
        store, *(case(at, status="acknowledged", first_response_at=at) for _ in range(4))
    )
    # The budget office lets its due date pass; the case goes to the urban office instead,
    # which answers by its own.
    await act(store, late, at + timedelta(hours=1), refer("budget", first_due),
              department_id="budget", referral_due=first_due)  # fmt: skip
    await act(store, late, first_due + timedelta(days=1), refer("urban", second_due),
              department_id="urban", referral_due=second_due)  # fmt: skip
    await act(store, late, second_due - timedelta(hours=1), ("answer", "responded", {}),
              referral_answered_at=second_due - timedelta(hours=1))  # fmt: skip
    # Given a later due date before the first passed (one referral), and now past that.
    await act(store, extended, at + timedelta(hours=1), refer("budget", first_due),
              department_id="budget", referral_due=first_due)  # fmt: skip
    await act(store, extended, first_due - timedelta(days=1), refer("budget", second_due),
              referral_due=second_due)  # fmt: skip
    # Moved from the urban office to the budget office in time; the budget's is not due.
    await act(store, moved, at + timedelta(hours=1), refer("urban", first_due),
              department_id="urban", referral_due=first_due)  # fmt: skip
    await act(store, moved, first_due - timedelta(days=1), refer("budget", not_yet),
              department_id="budget", referral_due=not_yet)  # fmt: skip
    # Another deputy follows it; the urban office still has it, now past due.
    await act(store, reassigned, at + timedelta(hours=1), refer("urban", first_due),
              department_id="urban", referral_due=first_due)  # fmt: skip
    await act(store, reassigned, at + timedelta(days=1), ("reassign", "referred", {"to": "zhu"}),
              assignee_id="zhu")  # fmt: skip

    report = await figures(store)
    assert [key for key, _ in report.referrals] == ["budget", "urban"]  # most, then by id
    budget, urban = dict(report.referrals)["budget"], dict(report.referrals)["urban"]
    # Requests by department are by their latest referral.
    latest = [(key, c["received"]) for key, c in report.groups["department"]]
    assert latest == [("budget", 2), ("urban", 2)]
    # budget: late's (taken back late), extended's (one, past due), moved's (not due).
    assert (budget["referrals"], budget.referral.num, budget.referral.den) == (3, 0, 2)
    assert budget["referral_late"] == 2
    # urban: late's (answered in time), moved's (taken back in time), reassigned's (past due).
    assert (urban["referrals"], urban.referral.num, urban.referral.den) == (3, 1, 2)
    assert urban["referral_late"] == 1
    # Cases referred: four; referrals counted: each department's, added up.
    assert report.totals["referred"] == 4
    assert (report.totals.referral.num, report.totals.referral.den) == (1, 4)
    assert report.totals["referral_late"] == 3
    # The lists behind the figures: the cases referred to a department at any time.
    assert await listed(store, "referred", department="budget") == 3
    assert await listed(store, "referral_counted", department="budget") == 2
    assert await listed(store, "referral_on_time", department="budget") == 0
    assert await listed(store, "referral_on_time", department="urban") == 1
    assert await listed(store, "referral_late", department="budget") == 2
    assert await listed(store, "referral_late", department="urban") == 1
    assert await listed(store, "referral_counted") == 3
    assert await listed(store, "referred") == 4
    # Only the latest referral is the case's own: the lists' department filter alone.
    assert await listed(store, "received", department="urban") == 2
    history = await store.fetch(
        "SELECT r.department_id, r.due, r.answered_at, r.ended_at"
        " FROM referrals r JOIN cases c ON c.id = r.case_id"
        " WHERE c.code IN (:late, :extended) ORDER BY r.id",
        {"late": late, "extended": extended},
    )
    assert [tuple(row.values()) for row in history] == [
        ("budget", to_utc_text(first_due), None, to_utc_text(first_due + timedelta(days=1))),
        ("urban", to_utc_text(second_due), to_utc_text(second_due - timedelta(hours=1)), None),
        ("budget", to_utc_text(second_due), None, None),  # extended: its due date moved on
    ]


async def test_overdue_now_and_the_breakdowns_match_their_lists(store: Store) -> None:
    at = NOW - timedelta(days=1)
    await load(
        store,
        case(at, channel="sms", source_tag=None),  # no response within 4 h: overdue
        case(
            at,
            channel="web",
            source_tag="canteen",
            company="平湖某某精密机械有限公司",
            status="acknowledged",
            first_response_at=at + timedelta(hours=1),
            assignee_id="zhu",
        ),
        case(at, channel="kiosk", status="closed", resolved_at=at + timedelta(hours=5)),
    )
    report = await figures(store)
    assert report.totals["overdue"] == 1
    assert await listed(store, "overdue") == 1
    channels = {key: c["received"] for key, c in report.groups["channel"]}
    assert channels == {"sms": 1, "web": 1, "kiosk": 1}
    for dimension, key, query in (
        ("channel", "sms", {"channel": "sms"}),
        ("source", "canteen", {"source": "canteen"}),
        ("member", "zhu", {"member": "zhu"}),
        ("company", "平湖某某精密机械有限公司", {"company": "平湖某某精密机械有限公司"}),
    ):
        counts = dict(report.groups[dimension])[key]
        assert await listed_by(store, "received", query) == counts["received"] == 1
    # A representative's own report counts only their cases.
    mine = await figures(store, member="zhu")
    assert mine.totals["received"] == 1 and mine.totals["overdue"] == 0


async def test_medians_to_the_minute(store: Store) -> None:
    at = NOW - timedelta(days=3)
    await load(
        store,
        *(
            case(at, status="acknowledged", first_response_at=at + timedelta(minutes=m))
            for m in (10, 20, 30, 40)
        ),
    )
    report = await figures(store)
    assert report.median_response == pytest.approx(25.5 * 60)  # (20m + 30m) / 2, mid-minute
    assert reports.median({}) is None
    assert reports.median({5: 1}) == 5.5 * 60
    assert reports.median({2000: 3}) == 2005 * 60  # by ten minutes beyond a day


async def test_a_case_at_23_59_on_the_last_day_is_in_that_month(store: Store) -> None:
    last = datetime(2026, 10, 31, 23, 59, 59, tzinfo=TZ)
    first = datetime(2026, 11, 1, 0, 0, 0, tzinfo=TZ)
    await load(store, case(last.astimezone(UTC)), case(first.astimezone(UTC)))
    october = await figures(store, parse_month("2026-10"))
    november = await figures(store)
    assert october.totals["received"] == november.totals["received"] == 1
    assert october.buckets[-1].first == date(2026, 10, 31)
    assert october.buckets[-1].counts["received"] == 1
    assert november.buckets[0].counts["received"] == 1
    # The same edge through the console list behind the figure.
    assert await listed(store, "received", period=parse_month("2026-10")) == 1


async def test_local_days_across_a_change_of_offset(store: Store) -> None:
    """A point in Europe/Berlin: summer time ends 2026-10-25 at 01:00 UTC."""
    berlin = ZoneInfo("Europe/Berlin")
    spans = reports.utc_offsets(
        berlin, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert spans == [("2026-10-25T01:00:00.000000Z", 120), (None, 60)]
    since = datetime(2026, 9, 30, 22, 0, tzinfo=UTC)  # October 1st, 00:00 in Berlin
    edges = [
        datetime(2026, 10, 24, 23, 30, tzinfo=berlin),  # before the change
        datetime(2026, 10, 25, 23, 30, tzinfo=berlin),  # after it: the 25th, not the 26th
    ]
    await load(store, *(case(e.astimezone(UTC)) for e in edges))
    rows = await store.reports.by_day(
        Scope(to_utc_text(since), "2026-10-31T23:00:00.000000Z"), to_utc_text(NOW),
        "Europe/Berlin", reports.utc_offsets(berlin, since, datetime(2026, 10, 31, 23, tzinfo=UTC)),
    )  # fmt: skip
    assert sorted(str(r["day"])[:10] for r in rows) == ["2026-10-24", "2026-10-25"]


async def test_kept_months_are_counted_again_when_a_case_of_theirs_changes(
    store: Store,
) -> None:
    at = datetime(2026, 9, 10, 3, 0, tzinfo=UTC)
    [code] = await load(store, case(at, status="closed", resolved_at=at + timedelta(days=1)))
    year = preset("this-year", date(2026, 11, 24))
    first = await figures(store, year)
    assert first.totals["resolution_met"] == 1
    scope = Scope(*month(2026, 9).bounds(TZ))
    assert await store.reports.saved_part(scope) is not None  # September is kept
    # The workers keep the last 13 months: those this year's report did not count yet...
    assert await reports.keep_months(store, CONFIG, NOW) == 3  # October to December 2025
    assert await reports.keep_months(store, CONFIG, NOW) == 0  # ...and then all hold
    # The case is reopened: its month is counted again.
    stored = await store.cases.by_code(code)
    assert stored is not None
    changed = await store.cases.transition(
        stored, {"status": "reopened", "resolved_at": None, "reopens": 1,
                 "updated_at": to_utc_text(NOW)},
        ("reopen", "reopened", "shen", {}), NOW,
    )  # fmt: skip
    assert changed is not None
    again = await figures(store, year)
    assert again.totals["resolution_met"] == 0 and again.totals["resolution_counted"] == 1


async def test_a_members_kept_month_loses_a_case_reassigned_away(store: Store) -> None:
    """chen's October is kept; its case then goes to zhu: chen's figures lose it, as the
    list behind them does, and zhu's gain it (it is counted once)."""
    at = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    [code] = await load(store, case(at, status="acknowledged", first_response_at=at))
    year = preset("this-year", date(2026, 11, 24))
    assert (await figures(store, year, member="chen")).totals["received"] == 1
    assert await store.reports.saved_part(Scope(*month(2026, 10).bounds(TZ), "chen"))
    stored = await store.cases.by_code(code)
    assert stored is not None
    later = NOW + timedelta(minutes=5)
    moved = await store.cases.transition(
        stored, {"assignee_id": "zhu", "updated_at": to_utc_text(later)},
        ("reassign", "acknowledged", "shen", {"to": "zhu"}), later,
    )  # fmt: skip
    assert moved is not None
    chen = await reports.build(store, CONFIG, year, later, member="chen")
    zhu = await reports.build(store, CONFIG, year, later, member="zhu")
    assert (chen.totals["received"], zhu.totals["received"]) == (0, 1)
    assert await listed(store, "received", period=year, member="chen") == 0


async def test_a_kept_month_sees_a_change_stamped_just_before_it_was_counted(
    store: Store,
) -> None:
    """A write stamped a moment before the count but committed after it read it (a slow
    write, a node whose clock is a little behind) still makes the month be counted again."""
    at = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    [code] = await load(store, case(at))
    october = parse_month("2026-10")
    assert (await reports.build(store, CONFIG, october, NOW)).totals["response_counted"] == 1
    stored = await store.cases.by_code(code)
    assert stored is not None
    stamped = NOW - timedelta(seconds=20)  # before the count, committed after it
    changed = await store.cases.transition(
        stored, {"status": "acknowledged", "first_response_at": to_utc_text(at),
                 "updated_at": to_utc_text(stamped)},
        ("acknowledge", "acknowledged", "chen", {}), stamped,
    )  # fmt: skip
    assert changed is not None
    again = await reports.build(store, CONFIG, october, NOW + timedelta(seconds=1))
    assert again.totals["response_met"] == 1


async def test_whole_minutes_stay_whole_on_both_engines(store: Store) -> None:
    """SQLite's julianday gives an hour as 3599.99998 s: the median must not fall a minute
    short (59.5 min on SQLite where PostgreSQL says 60.5)."""
    at = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    await load(
        store,
        *(case(at + timedelta(minutes=i), status="acknowledged",
               first_response_at=at + timedelta(minutes=i, hours=1)) for i in range(37)),
    )  # fmt: skip
    assert (await figures(store)).median_response == 60.5 * 60


async def test_kept_months_expire_when_a_due_time_of_theirs_passes(store: Store) -> None:
    """A case of October still waiting for its first response, due after the month was
    counted: at that time the figure changes with no change to the case."""
    received = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    due = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # a (made-up) late due time
    await load(store, case(received, first_response_due=due))
    october = parse_month("2026-10")
    before = await reports.build(store, CONFIG, october, NOW)
    assert before.totals["response_counted"] == 0
    saved = await store.reports.saved_part(Scope(*october.bounds(TZ)))
    assert saved is not None and saved["expires_at"] == to_utc_text(due)
    after = await reports.build(store, CONFIG, october, due + timedelta(seconds=1))
    assert after.totals["response_counted"] == 1


async def test_a_month_counted_at_the_instant_a_due_time_falls_is_counted_again_later(
    store: Store,
) -> None:
    """At its due instant a first response is not late yet; a moment later it is: the
    month kept from that instant must not outlive it."""
    received = datetime(2026, 10, 31, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai, unanswered
    await load(store, case(received))
    october, due = parse_month("2026-10"), received + RESPOND
    at_due = await reports.build(store, CONFIG, october, due)
    assert at_due.totals.response.den == 0 and at_due.totals["overdue"] == 0
    later = await reports.build(store, CONFIG, october, due + timedelta(hours=1))
    assert (later.totals.response.den, later.totals["overdue"]) == (1, 1)


async def test_a_request_in_the_last_moment_of_a_day_is_counted_on_that_day(
    store: Store,
) -> None:
    """23:59:59.9997 on the period's last day: in the period, and in its last day's bar
    (SQLite's date() rounds to the millisecond: it was the next day, outside the period)."""
    last = datetime(2026, 11, 30, 23, 59, 59, 999700, tzinfo=TZ).astimezone(UTC)
    await load(store, case(last), case(last - timedelta(days=1)))
    report = await figures(store)
    assert report.totals["received"] == 2
    assert [b.counts["received"] for b in report.buckets][-2:] == [1, 1]
    both = await figures(store, Period(date(2026, 11, 30), date(2026, 12, 1)))
    assert [b.counts["received"] for b in both.buckets] == [1, 0]


async def test_measures_are_the_ones_named() -> None:
    with pytest.raises(ValueError, match="not a report measure"):
        Measures("2026-11-24T03:00:00.000000Z", {}).condition("everything")


def test_periods_and_their_errors() -> None:
    today = date(2026, 11, 24)  # a Tuesday
    assert preset("this-week", today) == Period(date(2026, 11, 23), date(2026, 11, 29))
    assert preset("this-month", today) == Period(date(2026, 11, 1), date(2026, 11, 30))
    assert preset("last-month", today) == Period(date(2026, 10, 1), date(2026, 10, 31))
    assert preset("this-quarter", today) == Period(date(2026, 10, 1), date(2026, 12, 31))
    assert preset("this-year", today) == Period(date(2026, 1, 1), date(2026, 12, 31))
    assert preset("last-month", date(2026, 1, 5)) == Period(date(2025, 12, 1), date(2025, 12, 31))
    assert parse_period("", "", "", today) == preset("this-month", today)
    assert parse_month("2024-02") == Period(date(2024, 2, 1), date(2024, 2, 29))
    bad = [
        (("2026-11-01", "", ""), "to"),
        (("", "2026-11-01", ""), "from"),
        (("2026-11-31", "2026-12-01", ""), "from"),
        (("2026-11-01", "2026-10-01", ""), "to"),
        (("2020-01-01", "2026-01-01", ""), "to"),
        (("20261101", "2026-12-01", ""), "from"),
        (("2026-11-01\x00", "2026-12-01", ""), "from"),
        (("2026-W48-1", "2026-12-01", ""), "from"),  # an ISO week date, ten long too
        (("2026-11-01", "2026-W49-1", ""), "to"),
        (("２０２６-１１-０１", "2026-12-01", ""), "from"),
        (("2021-11-01", "2026-11-01", ""), "to"),  # five years and a day
        (("2024-02-29", "2029-03-01", ""), "to"),
        (("", "", "next-decade"), "period"),
    ]
    for (first, last, name), field in bad:
        with pytest.raises(BadPeriod) as raised:
            parse_period(first, last, name, today)
        assert raised.value.field == field, (first, last, name)
    # A date of the right shape, past the years taken, says so (not "not a date").
    with pytest.raises(BadPeriod) as far:
        parse_period("0001-01-01", "2026-01-01", "", today)
    assert (far.value.field, far.value.message) == ("from", "a date in the years 1900 to 9000")
    with pytest.raises(BadPeriod) as odd:
        parse_period("2026/11/01", "2026-12-01", "", today)
    assert odd.value.message == "not a date such as 2026-11-01"
    # Five years to the day before, and no more, is a report's longest.
    assert parse_period("2021-11-01", "2026-10-31", "", today).days == 1826
    assert parse_period("2024-02-29", "2029-02-28", "", today).last == date(2029, 2, 28)
    for text in ("2026-13", "2026-1", "26-11", "x", "2026-11-01", "０２６-11", "２０２６-１１",
                 "2026-1 ", " 2026-1", "2026-+1", "20_26-1", "2026-00", "1899-12"):  # fmt: skip
        with pytest.raises(BadPeriod):
            parse_month(text)
    assert month_before(parse_month("1900-01")) == Period(date(1899, 12, 1), date(1899, 12, 31))
    assert month_before(parse_month("2027-03")).last == date(2027, 2, 28)
    assert from_utc_text(Period(date(2026, 11, 1), date(2026, 11, 1)).bounds(TZ)[1]) == datetime(
        2026, 11, 1, 16, 0, tzinfo=UTC
    )


def test_a_referral_is_due_at_the_very_end_of_its_day() -> None:
    """An answer in the due day's last second is on time (it was due at 23:59:59.000)."""
    due = referral_due(date(2026, 11, 20), TZ)
    assert due == datetime(2026, 11, 20, 15, 59, 59, 999999, tzinfo=UTC)
    assert datetime(2026, 11, 20, 23, 59, 59, 500000, tzinfo=TZ) <= due
    assert to_utc_text(datetime(2026, 11, 20, 23, 59, 59, 500000, tzinfo=TZ)) <= to_utc_text(due)


def test_the_demo_asks_again_for_a_rating_once_resolved_again() -> None:
    """A made-up request rated low, reopened and resolved again waits for a new rating, as
    casework has it (its first request for one would keep it from ever being rated)."""
    rows = [p.row for p in made_up(CONFIG, 4000, timedelta(days=400), NOW, seed=3, prefix="d")]
    again = [r for r in rows if r["status"] == "resolved" and r.get("reopens")]
    assert again, "the made-up months have requests resolved again"
    assert all(r["rating_requested_at"] == r["resolved_at"] for r in again)
