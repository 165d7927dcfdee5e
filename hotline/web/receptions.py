"""Themed receptions (主题接待): the public list and event pages (sign-up, calendar file),
and the console's pages to schedule and run them, with the deputies' entry of the requests
raised at an event (channel walk-in, tagged with the event)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from icalendar import Calendar, Event

from hotline import appkeys
from hotline.channels.fields import FieldErrors, is_number
from hotline.channels.receptions import parse_plan, parse_signup
from hotline.channels.webform import parse_submission
from hotline.service.duty import Schedule
from hotline.service.i18n import N_, gettext, listing, named
from hotline.service.receptions import REFUSALS, Plan, Reception, SignupRefused, reception_id
from hotline.web import auth, csrf, limits
from hotline.web.console import page
from hotline.web.forms import read_form
from hotline.web.links import public_base
from hotline.web.render import render
from hotline.web.views import read_submission

# A deputy may enter the requests raised at an event from its day on, until a week after.
ENTRY_AFTER = timedelta(days=7)


async def _found(request: web.Request) -> Reception:
    found = reception_id(request.match_info["id"])
    reception = await request.app[appkeys.STORE].receptions.get(found) if found else None
    if reception is None:
        raise web.HTTPNotFound(text=gettext("There is no reception with this number."))
    return reception


def _names(request: web.Request, reception: Reception) -> dict[str, list[str]]:
    """The deputies' and departments' names (ids no longer in the directory are left out)."""
    config = request.app[appkeys.DIRECTORY].config
    deputies = [m.name for m in map(config.member, reception.deputies) if m is not None]
    departments = [d.name for d in map(config.department, reception.departments) if d]
    return {"deputies": deputies, "departments": departments}


def _day_off(request: web.Request, reception: Reception) -> str | None:
    """The name of the day off the event falls on (a holiday of China's calendar or of the
    point's own, a weekend), as the duty roster counts days; None on a workday."""
    config = request.app[appkeys.DIRECTORY].config
    tz = config.point.timezone
    note = Schedule(config.duty, tz).day_note(reception.starts_at.astimezone(tz).date())
    if note is None or note[0] != "off":
        return None
    _, name, source = note
    if name.strip():
        return name
    return gettext("a weekend") if source == "weekend" else gettext("a holiday")


async def _withdrawals(request: web.Request, reception: Reception) -> list[dict[str, Any]]:
    """The sign-ups withdrawn from the event, each with the name of the head who did it (or
    their id, once they are no longer in the directory)."""
    config = request.app[appkeys.DIRECTORY].config
    found = await request.app[appkeys.STORE].receptions.withdrawals(reception.id)
    named = []
    for withdrawal in found:
        member = config.member(withdrawal.withdrawn_by)
        named.append(
            {"signup": withdrawal, "by": member.name if member else withdrawal.withdrawn_by}
        )
    return named


def _state(reception: Reception, now: datetime) -> str:
    """cancelled, over, under way, full, or open (for sign-up)."""
    if reception.cancelled_at is not None:
        return "cancelled"
    if reception.ends_at <= now:
        return "over"
    if reception.starts_at <= now:
        return "under-way"
    return "full" if reception.seats_left == 0 else "open"


# -- public -------------------------------------------------------------------------------


def _before(request: web.Request) -> int | None:
    """`?before=ID`: the page of past events held before that one; 400 when it is no id."""
    raw = request.query.get("before")
    if raw is None:
        return None
    found = reception_id(raw)
    if found is None:
        raise web.HTTPBadRequest(text="before: " + N_("not a reception number"))
    return found


async def _past(request: web.Request, now: datetime, limit: int) -> dict[str, Any]:
    """A page of past events, latest first, and the id the next page starts before (if
    this one is full)."""
    past = await request.app[appkeys.STORE].receptions.past(now, limit, _before(request))
    return {
        "past": [(r, _state(r, now)) for r in past],
        "earlier": past[-1].id if len(past) == limit else None,
    }


async def public_list(request: web.Request) -> web.StreamResponse:
    """GET /receptions: upcoming events, soonest first, then past ones (`?before=ID`: the
    past ones held before that event)."""
    store, now = request.app[appkeys.STORE], request.app[appkeys.CLOCK]()
    upcoming = await store.receptions.upcoming(now)
    context = {"upcoming": [(r, _state(r, now)) for r in upcoming]}
    return render(request, "receptions.html", context | await _past(request, now, 20))


async def _public_page(
    request: web.Request,
    reception: Reception,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    refused: str | None = None,
    signed_up: bool = False,
    status: int = 200,
) -> web.StreamResponse:
    now = request.app[appkeys.CLOCK]()
    state = _state(reception, now)
    started = state in ("under-way", "over")
    context = {
        "reception": reception,
        "state": state,
        "standing": await request.app[appkeys.RECEPTIONS].standing(reception.id)
        if started
        else None,
        "values": values or {},
        "errors": errors or {},
        "refused": refused,
        "signed_up": signed_up,
        "csrf_token": csrf.token(request),
        "reminds": request.app[appkeys.RECEPTIONS].reminds(reception),
        # With no SMS provider, the confirmation and the reminder are kept unsent: not said.
        "texts": request.app[appkeys.SETTINGS].twilio.can_send,
    } | _names(request, reception)
    return csrf.attach(request, render(request, "reception.html", context, status=status))


async def public_page(request: web.Request) -> web.StreamResponse:
    """GET /receptions/{id}: the event, its sign-up form while seats are left, and after it
    started, how many requests were raised there and where they stand (counts only)."""
    return await _public_page(request, await _found(request))


async def sign_up(request: web.Request) -> web.StreamResponse:
    """POST /receptions/{id}: a business signs up (company, contact, phone, what to raise)."""
    reception = await _found(request)
    form = await read_form(request)
    errors = FieldErrors()
    given = parse_signup(form, errors)
    values = {k: str(form.get(k, ""))[:4000] for k in ("company", "name", "phone", "text")}
    token_problem = csrf.problem(request, form.get(csrf.FIELD))
    if token_problem:
        refused = named(csrf.FIELD, gettext(token_problem))
        return await _public_page(request, reception, values=values, refused=refused, status=403)
    if given is None:
        translated = errors.translated()
        return await _public_page(request, reception, values=values, errors=translated,
                                  status=400)  # fmt: skip
    try:
        await limits.count_signup(request)  # what would take a place and text a number
    except web.HTTPTooManyRequests as busy:
        # Said on the event's page, with what was typed and how long to wait.
        wait = int(busy.headers["Retry-After"])
        refused = (
            gettext(str(busy.text))
            + " "
            + gettext("You may try again in about %(minutes)d minutes.")
            % {"minutes": max(1, -(-wait // 60))}
        )
        page = await _public_page(request, reception, values=values, refused=refused,
                                  status=429)  # fmt: skip
        page.headers["Retry-After"] = str(wait)
        return page
    try:
        await request.app[appkeys.RECEPTIONS].sign_up(reception, given, request[appkeys.LANG])
    except SignupRefused as refusal:
        fresh = await request.app[appkeys.STORE].receptions.get(reception.id) or reception
        if refusal.reason == "taken":
            # Answered as a sign-up: the answer does not say the number is signed up (it
            # was texted then; it is not texted again). The places left, shown to all,
            # do not go down for it.
            return await _public_page(request, fresh, signed_up=True, status=201)
        refused = gettext(REFUSALS[refusal.reason])
        return await _public_page(request, fresh, values=values, refused=refused, status=409)
    fresh = await request.app[appkeys.STORE].receptions.get(reception.id) or reception
    return await _public_page(request, fresh, signed_up=True, status=201)


async def ics(request: web.Request) -> web.StreamResponse:
    """GET /receptions/{id}.ics: the event for a calendar (cancelled: STATUS:CANCELLED)."""
    reception = await _found(request)
    config = request.app[appkeys.DIRECTORY].config
    names = _names(request, reception)
    cal = Calendar()
    cal.add("prodid", "-//Liaison Hotline//themed receptions//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{config.point.id}-reception-{reception.id}@liaison-hotline")
    event.add("dtstamp", request.app[appkeys.CLOCK]())
    # A changed or cancelled event replaces the one a calendar holds: same UID, higher SEQUENCE.
    event.add("sequence", reception.version - 1)
    if reception.updated_at is not None:
        event.add("last-modified", reception.updated_at)
    event.add("dtstart", reception.starts_at)
    event.add("dtend", reception.ends_at)
    event.add("summary", f"{config.point.name} · {reception.topic}")
    event.add("location", reception.place)
    about = [reception.details] if reception.details else []
    if names["deputies"]:
        about.append(
            gettext("Deputies attending: %(names)s") % {"names": listing(names["deputies"])}
        )
    if names["departments"]:
        about.append(
            gettext("Departments invited: %(names)s") % {"names": listing(names["departments"])}
        )
    event.add("description", "\n".join(about))
    path = request.app.router["reception"].url_for(id=str(reception.id))
    event.add("url", public_base(request) + str(path))
    if reception.cancelled_at is not None:
        event.add("status", "CANCELLED")
    cal.add_component(event)
    return web.Response(
        body=cal.to_ical(),
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="reception-{reception.id}.ics"'},
    )


# -- console ------------------------------------------------------------------------------


def _plan_values(reception: Reception, request: web.Request) -> dict[str, Any]:
    """An event's fields as its form shows them (local date and times)."""
    tz = request.app[appkeys.DIRECTORY].config.point.timezone
    starts, ends = reception.starts_at.astimezone(tz), reception.ends_at.astimezone(tz)
    return {
        "topic": reception.topic,
        "details": reception.details,
        "place": reception.place,
        "date": starts.date().isoformat(),
        "start": starts.strftime("%H:%M"),
        "end": ends.strftime("%H:%M"),
        "capacity": str(reception.capacity),
        "deputies": list(reception.deputies),
        "departments": list(reception.departments),
    }


def _form_values(form: Any) -> dict[str, Any]:
    """What a head typed, to show it again with the problems."""
    values: dict[str, Any] = {
        k: str(form.get(k, ""))[:2000]
        for k in ("topic", "details", "place", "date", "start", "end", "capacity")
    }
    values["deputies"] = [str(v) for v in form.getall("deputies", [])]
    values["departments"] = [str(v) for v in form.getall("departments", [])]
    return values


async def console_list(
    request: web.Request,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    """GET /console/receptions: every member sees the events; heads schedule them here."""
    store, now = request.app[appkeys.STORE], request.app[appkeys.CLOCK]()
    context = {
        "upcoming": [(r, _state(r, now)) for r in await store.receptions.upcoming(now)],
        "values": values or {"capacity": "30", "start": "09:30", "end": "11:30"},
        "errors": errors or {},
        "is_head": request[appkeys.SESSION].member.role in auth.HEADS,
    } | await _past(request, now, 50)
    return page(request, "console/receptions.html", context, 400 if errors else 200)


def _plan(request: web.Request, form: Any) -> tuple[Plan | None, dict[str, str]]:
    errors = FieldErrors()
    config = request.app[appkeys.DIRECTORY].config
    plan = parse_plan(form, errors, config, request.app[appkeys.CLOCK]())
    return plan, errors.translated()


async def schedule(request: web.Request) -> web.StreamResponse:
    """POST /console/receptions: a head schedules an event."""
    session = auth.require_head(request)
    form = await read_form(request)
    plan, errors = _plan(request, form)
    if plan is None:
        return await console_list(request, values=_form_values(form), errors=errors)
    new_id = await request.app[appkeys.RECEPTIONS].schedule(plan, session.member.id)
    raise web.HTTPSeeOther(request.app.router["console-reception"].url_for(id=str(new_id)))


async def console_page(
    request: web.Request,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
) -> web.StreamResponse:
    """GET /console/receptions/{id}: the event, who signed up, where its requests stand."""
    reception = await _found(request)
    store, now = request.app[appkeys.STORE], request.app[appkeys.CLOCK]()
    context = {
        "reception": reception,
        "state": _state(reception, now),
        "signups": await store.receptions.signups(reception.id),
        "withdrawals": await _withdrawals(request, reception),
        "day_off": _day_off(request, reception),
        "standing": await request.app[appkeys.RECEPTIONS].standing(reception.id),
        "values": values or _plan_values(reception, request),
        "errors": errors or {},
        "is_head": request[appkeys.SESSION].member.role in auth.HEADS,
        "can_enter": _can_enter(request, reception, now) and _enters(request, reception),
    } | _names(request, reception)
    return page(request, "console/reception.html", context, 400 if errors else 200)


async def change(request: web.Request) -> web.StreamResponse:
    """POST /console/receptions/{id}: a head changes the event, or cancels it."""
    session = auth.require_head(request)
    reception = await _found(request)
    form = await read_form(request)
    book = request.app[appkeys.RECEPTIONS]
    here = request.app.router["console-reception"].url_for(id=str(reception.id))
    action = form.get("action")
    if action not in (None, "cancel", "withdraw"):  # the edit form sends none
        raise web.HTTPBadRequest(text="action: " + N_("not an action on a reception"))
    if _state(reception, request.app[appkeys.CLOCK]()) not in ("open", "full"):
        raise web.HTTPConflict(text=gettext(SETTLED))
    if action == "cancel":
        if not await book.cancel(reception.id, session.member.id):
            raise web.HTTPConflict(text=gettext(SETTLED))  # it started, or was cancelled, now
        raise web.HTTPSeeOther(here)
    if action == "withdraw":
        raw = str(form.get("signup", ""))
        if not is_number(raw):
            raise web.HTTPBadRequest(text="signup: " + N_("not a sign-up number"))
        if not await book.withdraw(reception, int(raw), session.member.id):
            raise web.HTTPConflict(text=gettext(NOT_WITHDRAWN))
        raise web.HTTPSeeOther(here)
    plan, errors = _plan(request, form)
    if plan is None:
        return await console_page(request, values=_form_values(form), errors=errors)
    if not await book.change(reception, plan):
        fresh = await request.app[appkeys.STORE].receptions.get(reception.id) or reception
        if _state(fresh, request.app[appkeys.CLOCK]()) not in ("open", "full"):
            raise web.HTTPConflict(text=gettext(SETTLED))
        problem = gettext("Fewer places than the businesses signed up (%(taken)d).") % {
            "taken": fresh.signed_up
        }
        return await console_page(request, values=_form_values(form), errors={"capacity": problem})
    raise web.HTTPSeeOther(here)


SETTLED = N_("This reception has started or is cancelled: it can no longer be changed.")
NOT_WITHDRAWN = N_(
    "This sign-up is withdrawn already, or the reception has started or is cancelled."
)


def _can_enter(request: web.Request, reception: Reception, now: datetime) -> bool:
    """From the event's day on (point's time) until ENTRY_AFTER after it ended."""
    tz = request.app[appkeys.DIRECTORY].config.point.timezone
    first = reception.starts_at.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return reception.cancelled_at is None and first <= now <= reception.ends_at + ENTRY_AFTER


def _enters(request: web.Request, reception: Reception) -> bool:
    """Whether this member takes requests at the event: its deputies, and the point's heads."""
    member = request[appkeys.SESSION].member
    return member.id in reception.deputies or member.role == "head"


def _may_enter(request: web.Request, reception: Reception) -> None:
    if not _enters(request, reception):
        raise web.HTTPForbidden(text=gettext(NOT_HERE))
    if reception.cancelled_at is not None:
        raise web.HTTPConflict(text=gettext(ENTRY_CANCELLED))
    if not _can_enter(request, reception, request.app[appkeys.CLOCK]()):
        raise web.HTTPConflict(text=gettext(ENTRY_CLOSED))


NOT_HERE = N_("Requests raised at a reception are entered by its deputies and the heads.")


async def _entry_page(
    request: web.Request,
    reception: Reception,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    recorded: str | None = None,
    status: int = 200,
) -> web.StreamResponse:
    config = request.app[appkeys.DIRECTORY].config
    lang = request[appkeys.LANG]
    store = request.app[appkeys.STORE]
    context = {
        "reception": reception,
        "categories": [(c.code, c.name(lang)) for c in config.categories],
        "values": values,
        "errors": errors,
        "recorded": recorded,
        "standing": await request.app[appkeys.RECEPTIONS].standing(reception.id),
        "signups": await store.receptions.signups(reception.id),
    }
    return page(request, "console/reception_entry.html", context, status)


async def entry_form(request: web.Request) -> web.StreamResponse:
    """GET /console/receptions/{id}/entry: a deputy's phone form for a request raised at
    the event."""
    reception = await _found(request)
    _may_enter(request, reception)
    return await _entry_page(request, reception, {"idem": uuid.uuid4().hex}, {})


ENTRY_CLOSED = N_("Requests are entered for a reception from its day until a week after it.")
ENTRY_CANCELLED = N_("This reception was cancelled: no requests are entered for it.")


async def enter(request: web.Request) -> web.StreamResponse:
    """POST /console/receptions/{id}/entry: the request goes in as a walk-in, taken by this
    deputy and tagged with the event; the form comes back empty for the next one."""
    session = request[appkeys.SESSION]
    reception = await _found(request)
    now = request.app[appkeys.CLOCK]()
    _may_enter(request, reception)
    values, errors, _ = await read_submission(request)  # the console checked the CSRF token
    intake = parse_submission(
        values,
        errors,
        request.app[appkeys.DIRECTORY].config,
        received_at=now,
        language=request[appkeys.LANG],
        channel="walk-in",
        taken_by=session.member.id,
    )
    if intake is None:
        return await _entry_page(request, reception, values, errors.translated(), status=400)
    intake = dataclasses.replace(intake, reception_id=reception.id)
    submitted = await request.app[appkeys.INTAKE].submit(intake)
    fresh = {"idem": uuid.uuid4().hex}
    return await _entry_page(request, reception, fresh, {}, recorded=submitted.code, status=201)
