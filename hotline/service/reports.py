"""What the point did in a period: the figures of the console's reports, the exports, the
monthly summary and the public /stats, as DESIGN.md "Reports" defines them.

A period is a range of local dates (the point's timezone, both ends included); its cases are
those received in it. The database counts (store/reports.py); this module turns the counts
into rates, breakdowns and series, and says which case list each figure counts."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hotline.service.caselists import due_times
from hotline.service.cases import from_utc_text, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.periods import Period, month, today_in
from hotline.service.store import Store
from hotline.service.store.database import Row
from hotline.service.store.reports import Measures, Scope

EXPORT_CHUNK = 2000
EXPORT_COLUMNS = (
    "code", "channel", "received_at", "category", "department", "assignee", "source_tag",
    "company", "status", "first_response_at", "first_response_due", "resolved_at",
    "resolution_due", "reopened", "rating", "presidium", "closed_at",
)  # fmt: skip
# The dimensions the reports break the received count down by, in the order shown.
BREAKDOWNS = ("channel", "category", "department", "member", "source", "company")
TOP_COMPANIES = 15
# A kept month holds as of this long before it was counted (see _part).
SETTLE = timedelta(minutes=1)


@dataclass(frozen=True)
class Rate:
    """A rate as a fraction: shown "12/30, 40.0%", or "—" with nothing to divide by."""

    num: int
    den: int

    @property
    def percent(self) -> float | None:
        """To one decimal, a half rounded up (四舍五入: 29/400 is 7.3%, where round() and
        "%.1f" give 7.2%); None with nothing to divide by."""
        if not self.den:
            return None
        return ((2000 * self.num + self.den) // (2 * self.den)) / 10

    def __str__(self) -> str:
        return f"{self.num}/{self.den}, {self.percent:.1f}%" if self.den else "—"

    def fraction(self) -> dict[str, Any]:
        """As JSON gives it: numerator, denominator, percent (one decimal; null for none)."""
        return {"numerator": self.num, "denominator": self.den, "percent": self.percent}


@dataclass
class Counts:
    """Every measure's count over some cases (a group, a day, the whole period)."""

    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Measures.NAMES, 0))

    def add(self, row: dict[str, Any]) -> None:
        for name in Measures.NAMES:
            self.n[name] += int(row.get(name) or 0)

    def __getitem__(self, name: str) -> int:
        return self.n[name]

    @property
    def response(self) -> Rate:
        return Rate(self.n["response_met"], self.n["response_counted"])

    @property
    def resolution(self) -> Rate:
        return Rate(self.n["resolution_met"], self.n["resolution_counted"])

    @property
    def satisfaction(self) -> Rate:
        return Rate(self.n["satisfied"], self.n["rated"])

    @property
    def referral(self) -> Rate:
        return Rate(self.n["referral_on_time"], self.n["referral_counted"])


@dataclass(frozen=True)
class Bucket:
    """A stretch of the period in a series (a day, a week or a month)."""

    first: date
    last: date
    counts: Counts
    by_channel: dict[str, int]


@dataclass
class Report:
    period: Period
    member: str | None  # a member's own cases only
    reception: int | None  # the requests raised at one themed reception only
    now: datetime
    totals: Counts
    groups: dict[str, list[tuple[str | None, Counts]]]  # dimension -> (key, counts), most first
    other_companies: Counts | None  # the companies past the top ones
    median_response: float | None  # seconds
    median_resolution: float | None
    buckets: list[Bucket]  # received per day, week or month
    rate_buckets: list[Bucket]  # the rates over weeks or months
    # Every referral of the period's requests, per department it went to, most first (the
    # department breakdown in `groups` is by each request's latest referral).
    referrals: list[tuple[str, Counts]] = field(default_factory=list)
    presidium: list[dict[str, Any]] = field(default_factory=list)

    @property
    def channels(self) -> list[str]:
        return sorted({ch for b in self.buckets for ch in b.by_channel})


def utc_offsets(tz: ZoneInfo, since: datetime, until: datetime) -> list[tuple[str | None, int]]:
    """The timezone's offset from UTC (minutes) over [since, until): a list of (until this
    UTC time, offset), the last with None. Daylight saving turns it into several."""
    spans: list[tuple[str | None, int]] = []

    def offset(at: datetime) -> int:
        delta = at.astimezone(tz).utcoffset()
        return int(delta.total_seconds() // 60) if delta else 0

    at, current = since, offset(since)
    while at < until:
        step = min(at + timedelta(days=1), until)
        if offset(step) != current:
            low, high = at, step  # the change is in (low, high]: find it to the minute
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            spans.append((to_utc_text(high.replace(second=0, microsecond=0)), current))
            current = offset(high)
        at = step
    spans.append((None, current))
    return spans


def segments(period: Period, today: date) -> list[tuple[Period, bool]]:
    """The period cut at month boundaries: (segment, kept). Whole months before this one
    are kept (store/reports `save_part`) and read back while they hold; the rest is counted
    each time."""
    cuts: list[tuple[Period, bool]] = []
    day = period.first
    while day <= period.last:
        whole = month(day.year, day.month)
        part = Period(day, min(whole.last, period.last))
        cuts.append((part, part == whole and whole.last < today))
        day = part.last + timedelta(days=1)
    return cuts


async def _counted(
    store: Store,
    config: PointConfig,
    period: Period,
    now: datetime,
    member: str | None,
    reception: int | None = None,
) -> dict[str, Any]:
    """The counts of one segment, as the database gives them (all of them at once, each
    query on a connection of its own)."""
    tz = config.point.timezone
    since, until = period.bounds(tz)
    scope = Scope(since, until, member, reception)
    at = to_utc_text(now)
    reports = store.reports
    offsets = utc_offsets(tz, from_utc_text(since), from_utc_text(until))
    per_rating = asyncio.gather(
        reports.referrals(scope, at),
        reports.ratings(scope),
        reports.ratings(scope, (str(tz), offsets)),
    )
    (
        flat,
        company,
        (referrals, ratings, rated_days),
        days,
        response,
        resolution,
    ) = await asyncio.gather(
        reports.grouped(scope, at, BREAKDOWNS[:-1]),
        reports.grouped(scope, at, ("company",), measures=("received",)),
        per_rating,
        reports.by_day(scope, at, str(tz), offsets),
        reports.minutes(scope, "first_response_at"),
        reports.minutes(scope, "resolved_at"),
    )
    return {
        "flat": [dict(row) for row in flat],
        "referrals": [dict(row) for row in referrals],
        "ratings": [dict(row) for row in ratings],
        "rated_days": [dict(row) for row in rated_days],
        "company": [dict(row) for row in company],
        "days": [dict(row) for row in days],
        "response": response,
        "resolution": resolution,
    }


async def _kept(store: Store, scope: Scope, at: str) -> dict[str, Any] | None:
    """A past month's kept counts while they hold: no case of it changed since they were
    counted, and no due time it was waiting on has passed (`expires_at`)."""
    saved = await store.reports.saved_part(scope)
    if saved is None or (saved["expires_at"] is not None and saved["expires_at"] <= at):
        return None
    if await store.reports.changed_since(scope, saved["computed_at"]):
        return None
    body: dict[str, Any] = json.loads(saved["body"])
    # Kept before referrals and ratings were counted apart: counted again.
    return body if "rated_days" in body else None


async def _part(
    store: Store,
    config: PointConfig,
    period: Period,
    now: datetime,
    member: str | None,
    kept: bool,
    reception: int | None = None,
) -> dict[str, Any]:
    """A segment's counts: a past month's read back while they hold, else counted (and,
    for a past month, kept). A reception's are always counted: they are few."""
    if not kept or reception is not None:
        return await _counted(store, config, period, now, member, reception)
    scope = Scope(*period.bounds(config.point.timezone), member)
    at = to_utc_text(now)
    found = await _kept(store, scope, at)
    if found is not None:
        return found
    part = await _counted(store, config, period, now, member)
    # Kept as of a little before now: a change stamped just before the count but committed
    # after it read (a slow write, another node's clock a little behind) still shows.
    counted_as_of = to_utc_text(now - SETTLE)
    await store.reports.save_part(
        scope, counted_as_of, await store.reports.expiry(scope, at), json.dumps(part)
    )
    return part


async def build(
    store: Store,
    config: PointConfig,
    period: Period,
    now: datetime,
    *,
    member: str | None = None,
    reception: int | None = None,
    with_presidium: bool = False,
) -> Report:
    """The figures of a period (a member's own cases with `member`, those raised at a
    themed reception with `reception`): counted by the database, a month at a time, past
    months kept."""
    today = today_in(config, now)
    cuts = segments(period, today)
    parts = await asyncio.gather(
        *(_part(store, config, cut, now, member, kept, reception) for cut, kept in cuts)
    )
    totals = Counts()
    sums: dict[str, dict[str | None, Counts]] = {d: defaultdict(Counts) for d in BREAKDOWNS}
    referred: dict[str, Counts] = defaultdict(Counts)
    days: list[dict[str, Any]] = []
    response: dict[int, int] = defaultdict(int)
    resolution: dict[int, int] = defaultdict(int)
    for part in parts:
        for row in part["flat"]:
            totals.add(row)
            for dimension in BREAKDOWNS[:-1]:
                sums[dimension][row[dimension]].add(row)
        for row in part["company"]:
            sums["company"][row["company"]].add(row)
        # Every referral, each under the department it went to (the flat rows group by
        # the case's latest): the per-referral figures come from here alone.
        for row in part["referrals"]:
            totals.add(row)
            referred[row["department"]].add(row)
        # Every rating, each under the member it is credited to: the satisfaction figures
        # come from here alone (in the series too, by the day its case was received).
        for row in part["ratings"]:
            totals.add(row)
            for dimension in BREAKDOWNS[:-1]:
                sums[dimension][row[dimension]].add(row)
        days.extend(part["rated_days"])
        days.extend(part["days"])
        for minute, n in part["response"]:
            response[minute] += n
        for minute, n in part["resolution"]:
            resolution[minute] += n
    groups = {d: _most_first(sums[d].items()) for d in BREAKDOWNS}
    # The top companies, the rest summed; requests that name none (every text) are a row of
    # their own after them, neither a company nor among the others.
    companies = [item for item in groups["company"] if item[0] is not None]
    other = None
    if len(companies) > TOP_COMPANIES:
        other = Counts()
        for _, counts in companies[TOP_COMPANIES:]:
            other.n["received"] += counts["received"]
    unnamed = [item for item in groups["company"] if item[0] is None]
    groups["company"] = companies[:TOP_COMPANIES] + unnamed
    report = Report(
        period=period,
        member=member,
        reception=reception,
        now=now,
        totals=totals,
        groups=groups,
        other_companies=other,
        median_response=median(response),
        median_resolution=median(resolution),
        buckets=_series(period, days, _step(period.days, received=True)),
        rate_buckets=_series(period, days, _step(period.days, received=False)),
        referrals=sorted(referred.items(), key=lambda item: (-item[1]["referrals"], item[0])),
    )
    if with_presidium:
        since, until = period.bounds(config.point.timezone)
        scope = Scope(since, until, member, reception)
        for row in await store.reports.presidium_items(scope):
            detail = json.loads(row["detail"] or "{}")
            report.presidium.append(
                dict(row)
                | {
                    "received_at": from_utc_text(row["received_at"]),
                    "reason": detail.get("text", ""),
                }
            )
    return report


async def keep_months(store: Store, config: PointConfig, now: datetime, months: int = 13) -> int:
    """Count and keep the whole point's past months (the last `months`) that are not kept,
    or whose kept figures no longer hold: run by the workers' timed work, so a year's report
    reads them back instead of counting them. Returns how many months were counted."""
    first = today_in(config, now).replace(day=1)
    at = to_utc_text(now)
    counted = 0
    for _ in range(months):
        first = (first - timedelta(days=1)).replace(day=1)
        whole = month(first.year, first.month)
        if await _kept(store, Scope(*whole.bounds(config.point.timezone)), at) is None:
            await _part(store, config, whole, now, None, kept=True)
            counted += 1
    return counted


def median(minutes: dict[int, int]) -> float | None:
    """The median in seconds of times counted by the minute (`store/reports.minutes`):
    the middle of the bucket the middle case is in (to the minute up to a day, to ten
    minutes beyond); None with no case."""
    total = sum(minutes.values())
    if not total:
        return None
    wanted, seen = [(total - 1) // 2, total // 2], 0
    found: list[float] = []
    for minute in sorted(minutes):
        width = 1 if minute < 1440 else 10
        later = seen + minutes[minute]
        found += [(minute + width / 2) * 60 for w in wanted if seen <= w < later]
        seen = later
    return sum(found) / len(found)


def _most_first(items: Iterable[tuple[str | None, Counts]]) -> list[tuple[str | None, Counts]]:
    return sorted(items, key=lambda item: (-item[1]["received"], item[0] or ""))


def _step(days: int, *, received: bool) -> str:
    """How a series divides the period: received per day up to two months (else per week,
    or per month beyond a year); rates per week up to two months, else per month."""
    if received:
        return "day" if days <= 62 else "week" if days <= 366 else "month"
    return "week" if days <= 62 else "month"


def _bucket_start(day: date, step: str) -> date:
    if step == "week":
        return day - timedelta(days=day.weekday())
    if step == "month":
        return day.replace(day=1)
    return day


def _series(period: Period, days: list[dict[str, Any]], step: str) -> list[Bucket]:
    """Every stretch of the period, empty ones too, each clipped to the period."""
    stretches: dict[date, Bucket] = {}
    day = period.first
    while day <= period.last:
        start = _bucket_start(day, step)
        if start not in stretches:
            stretches[start] = Bucket(max(start, period.first), day, Counts(), {})
        stretches[start] = Bucket(stretches[start].first, day, stretches[start].counts,
                                  stretches[start].by_channel)  # fmt: skip
        day += timedelta(days=1)
    for row in days:
        # The period's own days only (the store's day of a case at its edge is the period's:
        # a day past it, from an engine's rounding, is counted at the edge, never a 500).
        day = min(max(date.fromisoformat(str(row["day"])[:10]), period.first), period.last)
        bucket = stretches[_bucket_start(day, step)]
        bucket.counts.add(row)
        channel = str(row["channel"])
        received = int(row.get("received") or 0)  # a day's ratings have none
        bucket.by_channel[channel] = bucket.by_channel.get(channel, 0) + received
    return list(stretches.values())


def dues(config: PointConfig, row: Row) -> tuple[datetime, datetime]:
    """(first response due, resolution due) of an exported case, as the rates judge them."""
    if row["first_response_due"] and row["resolution_due"]:
        return from_utc_text(row["first_response_due"]), from_utc_text(row["resolution_due"])
    held = from_utc_text(row["held_until"]) if row["held_until"] else None
    return due_times(config, row["category"], from_utc_text(row["received_at"]), held)


async def export_rows(
    store: Store,
    config: PointConfig,
    period: Period,
    member: str | None = None,
    reception: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """The period's cases for an export, a chunk at a time, with EXPORT_COLUMNS as values
    (times aware, in the point's timezone; None where there is none)."""
    tz = config.point.timezone
    since, until = period.bounds(tz)
    scope = Scope(since, until, member, reception)
    after: tuple[str, int] | None = None

    def local(text: str | None) -> datetime | None:
        return from_utc_text(text).astimezone(tz) if text else None

    while True:
        rows = await store.reports.export_rows(scope, after, EXPORT_CHUNK)
        if not rows:
            return
        chunk = []
        for row in rows:
            respond_due, resolve_due = dues(config, row)
            chunk.append({
                "code": row["code"],
                "channel": row["channel"],
                "received_at": local(row["received_at"]),
                "category": row["category"],
                "department": row["department_id"],
                "assignee": row["assignee_id"],
                "source_tag": row["source_tag"],
                "company": row["company"],
                "status": row["status"],
                "first_response_at": local(row["first_response_at"]),
                "first_response_due": respond_due.astimezone(tz),
                "resolved_at": local(row["resolved_at"]),
                "resolution_due": resolve_due.astimezone(tz),
                "reopened": int(row["reopens"]),
                "rating": row["rating"],
                "presidium": bool(row["presidium"]),
                "closed_at": local(row["closed_at"]),
            })  # fmt: skip
        yield chunk
        after = (rows[-1]["received_at"], int(rows[-1]["id"]))
