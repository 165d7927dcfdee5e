"""The reports: the console's figures for a period with charts, the CSV and XLSX exports,
the printable monthly summary, and the public /stats. Heads and admins see the whole point;
a representative sees the cases assigned to them."""

from __future__ import annotations

import asyncio
import contextvars
import csv
import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, Refusal, duration, gettext
from hotline.service.labels import CHANNEL_LABELS, STATUS_LABELS
from hotline.service.periods import (
    PRESETS,
    BadPeriod,
    Period,
    month_before,
    parse_month,
    parse_period,
    preset,
    today_in,
)
from hotline.service.receptions import Reception, period_of, reception_id
from hotline.service.reports import EXPORT_COLUMNS, Rate, Report, build, export_rows
from hotline.web import auth, charts
from hotline.web.console import page
from hotline.web.render import error_page, render

STATS_FOR = 300.0  # seconds the public figures are kept before they are counted again


class Names:
    """What the reader calls each key of a breakdown, in their language."""

    def __init__(self, config: PointConfig, tags: dict[str, str], lang: str) -> None:
        self.config = config
        self.tags = tags
        self.lang = lang

    def __call__(self, dimension: str, key: str | None) -> str:
        if key is None:
            empty = {
                "department": gettext("not referred"),
                "member": gettext("nobody yet"),
                "source": gettext("no poster"),
            }
            return empty.get(dimension, gettext("not given"))
        if dimension == "channel":
            return gettext(CHANNEL_LABELS.get(key, key))
        if dimension == "category":
            category = self.config.category(key)
            return category.name(self.lang) if category else key
        if dimension == "department":
            department = self.config.department(key)
            return department.name if department else key
        if dimension == "member":
            member = self.config.member(key)
            return member.name if member else key
        if dimension == "source":
            return self.tags.get(key, key)
        return key


def _scope(request: web.Request) -> str | None:
    """None for the whole point (heads, admins); a representative's own id otherwise."""
    member = request[appkeys.SESSION].member
    return None if member.role in auth.HEADS else str(member.id)


def _period(request: web.Request, today: date) -> Period:
    q = request.query
    return parse_period(q.get("from", ""), q.get("to", ""), q.get("period", ""), today)


async def _selection(request: web.Request) -> tuple[Period, Reception | None]:
    """The period asked for and the themed reception whose requests alone are counted
    (`?reception=ID`): without dates, from the event's day to today. BadPeriod (or
    BadSelection) names the parameter at fault."""
    config = request.app[appkeys.DIRECTORY].config
    today = today_in(config, request.app[appkeys.CLOCK]())
    text = request.query.get("reception")
    if text is None:
        return _period(request, today), None
    found = reception_id(text)
    reception = await request.app[appkeys.STORE].receptions.get(found) if found else None
    if reception is None:
        raise BadSelection("reception", N_("no such reception"))
    q = request.query
    if q.get("from") or q.get("to") or q.get("period"):
        return _period(request, today), reception
    return period_of(reception, config, today), reception


class BadSelection(Refusal):
    """A report's filter that is not one: `field` names it."""


def _bad(request: web.Request, problem: Refusal) -> web.Response:
    message = problem.explain()
    return error_page(request, 400, message)


class Links:
    """The console list each figure counts: the period, a measure, a breakdown's key."""

    def __init__(
        self,
        request: web.Request,
        period: Period,
        member: str | None,
        reception: Reception | None = None,
    ) -> None:
        self.base = request.app.router["console-cases"].url_for()
        self.common = {"view": "all"} | period.query() | ({"member": member} if member else {})
        if reception is not None:
            self.common["reception"] = str(reception.id)

    def __call__(self, measure: str = "received", **dims: str | None) -> str:
        query = self.common | {"measure": measure}
        for name, value in dims.items():
            if value is not None:
                query[name] = value
        return str(self.base.with_query(query))


def _label(first: date, last: date, step_days: int) -> str:
    if first == last:
        return first.strftime("%m-%d")
    if step_days > 7:
        return first.strftime("%Y-%m")
    return first.strftime("%m-%d")


def _charts(report: Report, names: Names) -> list[charts.Chart]:
    received_labels = [_label(b.first, b.last, (b.last - b.first).days + 1)
                       for b in report.buckets]  # fmt: skip
    channels = report.channels or ["web"]
    by_channel = {
        names("channel", ch): [b.by_channel.get(ch, 0) for b in report.buckets] for ch in channels
    }
    per = {1: gettext("day"), 7: gettext("week")}.get(
        max(((b.last - b.first).days + 1 for b in report.buckets), default=1), gettext("month")
    )
    sparse = max(1, len(received_labels) // 16)
    total = report.totals["received"]
    drawn = [
        charts.stacked(
            gettext("Requests received per %(step)s, by channel") % {"step": per},
            gettext("%(total)d requests received in %(count)d periods, most in %(top)s.")
            % {"total": total, "count": len(report.buckets), "top": _top(report, received_labels)},
            received_labels,
            by_channel,
            key=gettext("Period"),
            sparse=sparse,
        )
    ]
    rate_labels = [b.first.strftime("%m-%d" if (b.last - b.first).days < 27 else "%Y-%m")
                   for b in report.rate_buckets]  # fmt: skip
    rates = {
        gettext("Response rate"): [b.counts.response.percent for b in report.rate_buckets],
        gettext("Resolution rate"): [b.counts.resolution.percent for b in report.rate_buckets],
        gettext("Satisfaction rate"): [b.counts.satisfaction.percent for b in report.rate_buckets],
    }
    drawn.append(
        charts.lines(
            gettext("The three rates over time"),
            gettext(
                "Response %(response)s, resolution %(resolution)s, satisfaction"
                " %(satisfaction)s over the whole period."
            )
            % {
                "response": report.totals.response,
                "resolution": report.totals.resolution,
                "satisfaction": report.totals.satisfaction,
            },
            rate_labels,
            rates,
            key=gettext("Period"),
        )
    )
    for dimension, title, key in (
        ("department", gettext("Requests per department"), gettext("Department")),
        ("member", gettext("Requests per member"), gettext("member")),
    ):
        # A member rated on requests that are someone else's now has a row, and no bar.
        items = [
            (names(dimension, key), c["received"])
            for key, c in report.groups[dimension]
            if c["received"]
        ]
        alt = "; ".join(f"{name}: {value}" for name, value in items) or gettext("none")
        drawn.append(charts.bars(title, alt, items, key=key))
    return drawn


# One thread draws every chart (some tens of milliseconds each, off the event loop): one
# thread's memory, not one per request.
_DRAWING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="charts")


async def _drawn(report: Report, names: Names) -> list[charts.Chart]:
    """The report's charts, drawn in the charts' thread in this request's language."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_DRAWING, context.run, _charts, report, names)


def _top(report: Report, labels: list[str]) -> str:
    if not report.buckets:
        return "—"
    best = max(range(len(report.buckets)), key=lambda i: report.buckets[i].counts["received"])
    return labels[best]


async def _names(request: web.Request, config: PointConfig) -> Names:
    tags = dict(await request.app[appkeys.STORE].kiosks.tags())
    return Names(config, tags, request[appkeys.LANG])


async def reports_page(request: web.Request) -> web.StreamResponse:
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    today = today_in(config, now)
    try:
        period, reception = await _selection(request)
    except Refusal as problem:
        return _bad(request, problem)
    member = _scope(request)
    report = await build(
        request.app[appkeys.STORE], config, period, now, member=member,
        reception=reception.id if reception else None,
    )  # fmt: skip
    names = await _names(request, config)
    # In a thread (a chart takes some tens of milliseconds), with this request's language.
    drawn = await _drawn(report, names)
    presets = [(key, label, preset(key, today)) for key, label in PRESETS.items()]
    context = {
        "report": report,
        "period": period,
        "presets": presets,
        "names": names,
        "link": Links(request, period, member, reception),
        "reception": reception,
        "charts": drawn,
        "duration": _duration,
        "whole_point": member is None,
        "statuses": STATUS_LABELS,
    }
    return page(request, "console/reports.html", context)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return duration(seconds)


async def monthly(request: web.Request) -> web.StreamResponse:
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    text = request.query.get("month", "")
    try:
        period = parse_month(text) if text else parse_month(today_in(config, now).strftime("%Y-%m"))
    except BadPeriod as problem:
        return _bad(request, problem)
    member = _scope(request)
    store = request.app[appkeys.STORE]
    report = await build(store, config, period, now, member=member, with_presidium=True)
    previous = await build(store, config, month_before(period), now, member=member)
    names = await _names(request, config)
    drawn = await _drawn(report, names)
    late = [(key, c) for key, c in report.referrals if c["referral_late"]]
    context = {
        "report": report,
        "previous": previous,
        "period": period,
        "names": names,
        "charts": drawn,
        "duration": _duration,
        "late_referrals": late,
        "whole_point": member is None,
        "statuses": STATUS_LABELS,
        "printed": now,
    }
    return page(request, "console/monthly.html", context)


# A spreadsheet reads a cell starting with one of these as a formula: a company name typed
# as "=HYPERLINK(...)" must stay text (OWASP's CSV injection advice: a leading quote).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A value as the CSV writes it: times ISO 8601 with their offset, flags 1/0, text that
    a spreadsheet would run as a formula quoted."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return "" if value is None else value


def _filename(period: Period, member: str | None, ext: str, reception: Reception | None) -> str:
    who = f"-{member}" if member else ""
    event = f"-reception{reception.id}" if reception else ""
    return f"hotline-cases-{period.first}-{period.last}{who}{event}.{ext}"


async def export_csv(request: web.Request) -> web.StreamResponse:
    """One row per case of the period, UTF-8 with a byte-order mark (so Excel on a Chinese
    Windows reads it as UTF-8), written as the rows are read."""
    config = request.app[appkeys.DIRECTORY].config
    try:
        period, reception = await _selection(request)
    except Refusal as problem:
        return _bad(request, problem)
    member = _scope(request)
    name = _filename(period, member, "csv", reception)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    await response.write(("\ufeff" + buffer.getvalue()).encode())
    event = reception.id if reception else None
    async for chunk in export_rows(request.app[appkeys.STORE], config, period, member, event):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows([[_cell(row[c]) for c in EXPORT_COLUMNS] for row in chunk])
        await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


def _xlsx_value(sheet: Any, value: Any) -> Any:
    """Excel keeps no offset: times go in as the point's local time (the sheet says so).
    Text is always text, never a formula (openpyxl takes a leading "=" for one)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(sheet, value)
        cell.data_type = "s"
        return cell
    return value


async def export_xlsx(request: web.Request) -> web.StreamResponse:
    """The same rows as the CSV in a workbook: sheet "cases" (times as Excel dates in the
    point's timezone) and sheet "about" (the period, the timezone, the headline figures)."""
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    try:
        period, reception = await _selection(request)
    except Refusal as problem:
        return _bad(request, problem)
    member = _scope(request)
    store = request.app[appkeys.STORE]
    event = reception.id if reception else None
    report = await build(store, config, period, now, member=member, reception=event)
    from openpyxl import Workbook  # imported when first asked for: a few MB not every serve needs

    book = Workbook(write_only=True)
    sheet = book.create_sheet("cases")
    sheet.append(list(EXPORT_COLUMNS))
    loop = asyncio.get_running_loop()
    async for chunk in export_rows(store, config, period, member, event):
        rows = [[_xlsx_value(sheet, row[c]) for c in EXPORT_COLUMNS] for row in chunk]
        await loop.run_in_executor(None, _append, sheet, rows)
    about = book.create_sheet("about")
    for line in _about(report, config, member):
        about.append(line)
    with tempfile.TemporaryFile() as out:
        await loop.run_in_executor(None, book.save, out)
        size = out.tell()
        out.seek(0)
        name = _filename(period, member, "xlsx", reception)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Length": str(size),
            }
        )
        await response.prepare(request)
        while block := await loop.run_in_executor(None, out.read, 1 << 16):
            await response.write(block)
    await response.write_eof()
    return response


def _append(sheet: Any, rows: list[list[Any]]) -> None:
    for row in rows:
        sheet.append(row)


def _about(report: Report, config: PointConfig, member: str | None) -> list[list[Any]]:
    totals = report.totals

    def rate(r: Rate) -> list[Any]:
        return [r.num, r.den, r.percent]

    return [
        ["point", config.point.name],
        ["timezone", str(config.point.timezone)],
        ["from", report.period.first.isoformat()],
        ["to", report.period.last.isoformat()],
        ["member", member or "(all)"],
        ["reception", report.reception if report.reception is not None else "(all)"],
        ["counted at", report.now.astimezone(config.point.timezone).replace(tzinfo=None)],
        ["received", totals["received"]],
        ["response rate", *rate(totals.response)],
        ["resolution rate", *rate(totals.resolution)],
        ["satisfaction rate", *rate(totals.satisfaction)],
        ["referred", totals["referred"]],
        ["referrals on time", *rate(totals.referral)],
        ["presidium", totals["presidium"]],
        ["overdue now", totals["overdue"]],
    ]


# -- public figures -------------------------------------------------------------------------


async def stats(request: web.Request) -> web.StreamResponse:
    """The point's public figures: this month and this year, counts and rates only. Counted
    at most every STATS_FOR seconds, by one visit at a time (a public page must not count a
    year on every visit, nor once for each of the visits that find the count old)."""
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    cache = request.app[appkeys.STATS_CACHE]
    today = today_in(config, now)
    key = today.isoformat()

    def fresh() -> tuple[float, dict[str, Report]] | None:
        kept = cache.get(key)
        return kept if kept is not None and time.monotonic() - kept[0] <= STATS_FOR else None

    kept = fresh()
    lock = request.app[appkeys.STATS_LOCK]
    if kept is None and lock.locked() and (older := cache.get(key)) is not None:
        kept = older  # another visit is counting: the figures of minutes ago meanwhile
    if kept is None:
        async with lock:
            kept = fresh()  # counted by the visit this one waited for
            if kept is None:
                store = request.app[appkeys.STORE]
                figures = {
                    name: await build(store, config, preset(name, today), now)
                    for name in ("this-month", "this-year")
                }
                kept = (time.monotonic(), figures)
                cache.clear()
                cache[key] = kept
    figures = kept[1]
    public = {name: _public(report) for name, report in figures.items()}
    wants_json = request.query.get("format") == "json" or (
        "application/json" in request.headers.get("Accept", "")
        and "text/html" not in request.headers.get("Accept", "")
    )
    if wants_json:
        body = {"point": config.point.id, "name": config.point.name, "as_of": today.isoformat()}
        return web.json_response(body | public, headers={"Cache-Control": "public, max-age=300"})
    context = {"figures": figures, "public": public, "today": today}
    response = render(request, "stats.html", context)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _public(report: Report) -> dict[str, Any]:
    t = report.totals

    return {
        "from": report.period.first.isoformat(),
        "to": report.period.last.isoformat(),
        "received": t["received"],
        "by_channel": {str(k): c["received"] for k, c in report.groups["channel"]},
        "referred": t["referred"],
        "presidium": t["presidium"],
        "response_rate": t.response.fraction(),
        "resolution_rate": t.resolution.fraction(),
        "satisfaction_rate": t.satisfaction.fraction(),
    }
