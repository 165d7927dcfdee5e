"""The duty roster: the console calendar and its changes, and the iCalendar feed."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from icalendar import Calendar, Event

from hotline import appkeys
from hotline.channels.fields import FieldErrors, clean_text, is_number
from hotline.service.duty import Segment
from hotline.service.dutybook import DutyError
from hotline.service.i18n import N_, translate
from hotline.web import auth
from hotline.web.console import page
from hotline.web.cookies import same
from hotline.web.forms import read_form

NOTE_MAX = 200
ICS_DAYS_BACK = 7
ICS_DAYS_AHEAD = 90
ON_DUTY = N_("On duty")
SOURCES = {"override": N_("override"), "standing-in": N_("standing in")}
SHIFT = N_("On duty: %(name)s")
SHIFT_BY = N_("On duty: %(name)s (%(source)s)")


def _local_day(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return start, end


def _clock(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def _parse_day(text: str | None, fallback: date) -> date:
    """A day to show; anything else (including years at the ends of the calendar, where a
    week's grid would overflow) shows the fallback."""
    try:
        day = date.fromisoformat(text) if text else fallback
    except ValueError:
        return fallback
    return day if 1900 <= day.year <= 9000 else fallback


async def calendar(
    request: web.Request, *, error: str | None = None, posted: dict[str, str] | None = None
) -> web.StreamResponse:
    """The roster; with `error`, a change was refused: `posted`, what was sent, fills its form
    again."""
    config = request.app[appkeys.DIRECTORY].config
    tz = config.point.timezone
    now = request.app[appkeys.CLOCK]()
    view = "month" if request.query.get("view") == "month" else "week"
    anchor = _parse_day(request.query.get("date"), now.astimezone(tz).date())
    if view == "week":
        first = anchor - timedelta(days=anchor.weekday())
        days = [first + timedelta(days=i) for i in range(7)]
        previous, following = first - timedelta(days=7), first + timedelta(days=7)
    else:
        first = anchor.replace(day=1)
        start_grid = first - timedelta(days=first.weekday())
        days = [start_grid + timedelta(days=i) for i in range(42)]
        previous = (first - timedelta(days=1)).replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    schedule = await request.app[appkeys.DUTY].schedule(now)
    grid = []
    for day in days:
        start, end = _local_day(day, tz)
        rows = [
            (s, _clock(s.start, tz), "24:00" if s.end == end else _clock(s.end, tz))
            for s in schedule.shifts(start, end)
        ]
        # Why a day is off (or a make-up workday), and who says so, where a calendar is kept.
        note = schedule.day_note(day) if config.duty.holidays or config.duty.days else None
        grid.append((day, rows, note))
    span_start, _ = _local_day(days[0], tz)
    _, span_end = _local_day(days[-1], tz)
    changes = await request.app[appkeys.DUTY].changes(span_start, span_end)
    context = {
        "view": view,
        "anchor": anchor,
        "month": first.month,
        "grid": grid,
        "previous": previous.isoformat(),
        "following": following.isoformat(),
        "changes": changes,
        "members": config.members,
        "on_duty": [m for m in config.members if m.phone],  # who may cover: texts reach them
        "handoff": config.duty.handoff.strftime("%H:%M"),
        "rotation": config.duty.rotation,
        "error": error,
        "posted": posted or {},
        "ics_url": ics_url(request),
        "now": now,
    }
    return page(request, "console/duty.html", context, status=400 if error else 200)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?")


def _when(form: Any, prefix: str, tz: ZoneInfo) -> datetime:
    day = str(form.get(prefix + "_date", "")).strip()
    clock = str(form.get(prefix + "_time", "") or "00:00").strip()
    try:
        # As a date and a time field send them, and the API takes them: Python's own parser
        # also takes 20261201, 2026-W49-1 and 08:30+05:00 (its offset then dropped).
        if not (_DATE.fullmatch(day) and _TIME.fullmatch(clock)):
            raise ValueError(day)
        local = datetime.combine(date.fromisoformat(day), time.fromisoformat(clock), tzinfo=tz)
        if not 1900 <= local.year <= 9000:  # 0001-01-01 or 9999-12-31 overflow on the way
            raise ValueError(day)
    except ValueError:
        raise DutyError(prefix, N_("not a date and time such as 2026-12-01 08:30")) from None
    return local.astimezone(UTC)


async def change(request: web.Request) -> web.StreamResponse:
    """Add or remove an override, a swap or an absence (heads and admins)."""
    session = auth.require_head(request)
    form = await read_form(request)
    config = request.app[appkeys.DIRECTORY].config
    tz = config.point.timezone
    book = request.app[appkeys.DUTY]
    now = request.app[appkeys.CLOCK]()
    actor = session.member.id
    kind = str(form.get("kind", ""))
    checked = FieldErrors()
    note = clean_text(checked, "note", str(form.get("note", "")), max_length=NOTE_MAX) or ""
    try:
        if checked:  # the note, read before each kind's own fields
            message, params = checked.errors["note"]
            raise DutyError("note", message, **params)
        if kind == "cover":
            member = str(form.get("member", ""))
            await book.add_cover(
                member, _when(form, "start", tz), _when(form, "end", tz), actor, now, note
            )
        elif kind == "away":
            member = str(form.get("member", ""))
            start = _when(form, "start", tz)
            end = _when(form, "end", tz)
            await book.add_away(member, start, end, actor, now, note)
        elif kind == "swap":
            first, second = _when(form, "first", tz), _when(form, "second", tz)
            raw = str(form.get("id", ""))  # given: edit that swap
            if raw and not is_number(raw):
                raise DutyError("id", N_("not a change number"))
            await book.add_swap(first, second, actor, now, int(raw) if raw else None)
        elif kind == "edit":
            raw = str(form.get("id", ""))
            if not is_number(raw):
                raise DutyError("id", N_("not a change number"))
            member = str(form.get("member", ""))
            start = _when(form, "start", tz)
            end = _when(form, "end", tz)
            await book.edit(int(raw), member, start, end, actor, now)
        elif kind == "remove":
            raw = str(form.get("id", ""))
            if not is_number(raw):
                raise DutyError("id", N_("not a change number"))
            await book.remove(int(raw), actor, now)
        else:
            raise DutyError("kind", N_("one of cover, away, swap, edit, remove"))
    except DutyError as exc:
        kept = {name: str(value) for name, value in form.items() if name != "csrf_token"}
        return await calendar(request, error=exc.explain(), posted=kept)
    raise web.HTTPSeeOther(request.rel_url)


# -- iCalendar feed --------------------------------------------------------------------


def feed_token(secret: str) -> str:
    """The secret token of the roster feed (derived from the point's secret key)."""
    return hmac.new(secret.encode(), b"duty.ics", hashlib.sha256).hexdigest()[:32]


def ics_url(request: web.Request) -> str:
    settings = request.app[appkeys.SETTINGS]
    base = settings.public_url or f"{request.scheme}://{request.host}"
    path = (
        request.app.router["duty-ics"].url_for().with_query(token=feed_token(settings.secret_key))
    )
    return base + str(path)


async def ics(request: web.Request) -> web.StreamResponse:
    """GET /duty.ics?token=...[&member=ID]: the roster for calendar apps; wrong token -> 404."""
    given = request.query.get("token", "")
    # A previous key's token too, while the key is rotated: calendars subscribed before.
    if not any(same(given, feed_token(key)) for key in request.app[appkeys.SETTINGS].secret_keys):
        raise web.HTTPNotFound(text=N_("no such calendar"))
    config = request.app[appkeys.DIRECTORY].config
    member_id = request.query.get("member")
    if member_id is not None and config.member(member_id) is None:
        raise web.HTTPNotFound(text=N_("no such calendar"))
    now = request.app[appkeys.CLOCK]()
    schedule = await request.app[appkeys.DUTY].schedule(now)
    # From the start of a shift, not from a moment a week ago: the first event is whole, and
    # its UID (from its start) the same at every fetch.
    since = schedule.rotation.shift_at(now - timedelta(days=ICS_DAYS_BACK)).start
    segments = schedule.shifts(since, now + timedelta(days=ICS_DAYS_AHEAD))
    lang = config.point.language
    cal = Calendar()
    cal.add("prodid", "-//Liaison Hotline//duty roster//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"{config.point.name} · {translate(lang, ON_DUTY)}")
    cal.add("x-wr-timezone", str(config.point.timezone))
    for segment in segments:
        if member_id and segment.member_id != member_id:
            continue
        cal.add_component(_event(segment, config.point.id, lambda m: _name(config, m), lang, now))
    return web.Response(
        body=cal.to_ical(),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": 'inline; filename="duty.ics"'},
    )


def _name(config: Any, member_id: str) -> str:
    member = config.member(member_id)
    return str(member.name) if member else member_id


def _event(segment: Segment, point_id: str, name: Any, lang: str, now: datetime) -> Event:
    event = Event()
    event.add(
        "uid", f"{point_id}-{segment.member_id}-{segment.start:%Y%m%dT%H%M%SZ}@liaison-hotline"
    )
    event.add("dtstamp", now)  # when this copy of the event was written (RFC 5545)
    event.add("dtstart", segment.start)
    event.add("dtend", segment.end)
    source = SOURCES.get(segment.source)
    words = {"name": name(segment.member_id)}
    if source:
        summary = translate(lang, SHIFT_BY) % (words | {"source": translate(lang, source)})
    else:
        summary = translate(lang, SHIFT) % words
    event.add("summary", summary)
    return event
