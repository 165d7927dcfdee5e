"""The representatives' console: sign-in, case lists, the case page and its actions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp_sse import sse_response
from yarl import URL

from hotline import appkeys
from hotline.channels.fields import FieldErrors, clean_text, is_number
from hotline.channels.webform import single_values
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.live import TooManyStreams
from hotline.service.accounts import Session, check_new_password
from hotline.service.caselists import VIEWS, BadPosition, Filters, clocks, list_cases
from hotline.service.cases import Message, normalize_code
from hotline.service.casework import (
    BadInput,
    CaseNotFound,
    Conflict,
    Request,
    referral_due,
    reply_max,
)
from hotline.service.duty import calendar_warning
from hotline.service.i18n import N_, Refusal, gettext, named
from hotline.service.labels import STATUS_LABELS
from hotline.service.receptions import Reception, reception_id
from hotline.service.workflow import ACTION_NAMES, Action, InvalidTransition, allowed
from hotline.web import auth, csrf
from hotline.web.forms import read_form
from hotline.web.limits import client_address
from hotline.web.render import error_page, render

log = logging.getLogger(__name__)


def page(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
    here: URL | None = None,
) -> web.Response:
    session = request.get(appkeys.SESSION)
    config = request.app[appkeys.DIRECTORY].config

    def member_name(member_id: str | None) -> str:
        """A member's name where an account id is stored (who registered a kiosk...)."""
        member = config.member(member_id) if member_id else None
        return member.name if member else (member_id or "—")

    # Heads and admins are told, 60 days ahead, when the holiday calendar runs out.
    head = session is not None and session.member.role in ("head", "admin")
    today = request.app[appkeys.CLOCK]().astimezone(config.point.timezone).date()
    common = {
        "session": session,
        "csrf": session.csrf if session else "",
        "point_config": config,
        "member_name": member_name,
        "calendar_ends": calendar_warning(config.duty, today) if head else None,
    }
    return render(request, template, common | context, status=status, here=here)


def _problem(request: web.Request, status: int, message: str) -> web.Response:
    return error_page(request, status, message)


# -- sign-in ----------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only our own console paths (or the kiosk): never an open redirect."""
    if target == "/kiosk" or (target and target.startswith("/console/")):
        return target
    return "/console/cases"


async def login_form(request: web.Request) -> web.StreamResponse:
    context = {"next": _safe_next(request.query.get("next")), "error": None, "member_id": ""}
    response = page(request, "console/login.html", context | {"token": csrf.token(request)})
    return csrf.attach(request, response)


async def login(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    member_id = str(form.get("member", "")).strip().lower()[:64]
    password = str(form.get("password", ""))
    context = {"next": _safe_next(str(form.get("next", ""))), "member_id": member_id}

    def again(status: int, error: str) -> web.Response:
        shown = context | {"error": error, "token": csrf.token(request)}
        response = page(request, "console/login.html", shown, status)
        return csrf.attach(request, response)  # type: ignore[return-value]

    problem = csrf.problem(request, form.get(csrf.FIELD))
    if problem:
        return again(403, named(csrf.FIELD, gettext(problem)))
    if not member_id or not password:
        return again(400, gettext("Enter your member id and password."))
    address = client_address(request)
    attempt, wait = await _begin_attempt(request, member_id, address)
    if wait:
        response = again(429, gettext("Too many failed sign-ins. Try again later."))
        response.headers["Retry-After"] = str(wait)
        return response
    member = await request.app[appkeys.PASSWORDS].verify(
        request.app[appkeys.STORE], member_id, password
    )
    if member is None:
        log.warning("failed sign-in for %r from %s", member_id, address)
        return again(401, gettext("Wrong member id or password."))
    await auth.attempt_succeeded(request, member_id, address, attempt)
    redirect = web.HTTPSeeOther(context["next"])
    await auth.start_session(request, member, redirect)
    log.info("%s signed in from %s", member.id, address)
    raise redirect


async def _begin_attempt(request: web.Request, member_id: str, address: str) -> tuple[str, int]:
    """A password attempt counted against the member and the address (`auth.begin_attempt`)."""
    try:
        return await auth.begin_attempt(request, member_id, address)
    except REDIS_DOWN:
        raise web.HTTPServiceUnavailable(
            text=N_("The console is unavailable for a moment: sessions cannot be read."),
            headers={"Retry-After": "10"},
        ) from None


async def logout(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)
    target = "/kiosk" if form.get("next") == "/kiosk" else None
    redirect = web.HTTPSeeOther(target or request.app.router["console-login"].url_for())
    await auth.end_session(request, redirect)
    raise redirect


async def password_form(request: web.Request) -> web.StreamResponse:
    return page(request, "console/password.html", {"error": None, "done": False})


async def change_password(request: web.Request) -> web.StreamResponse:
    session = request[appkeys.SESSION]
    form = await read_form(request)
    current, new, again = (str(form.get(k, "")) for k in ("current", "new", "confirm"))
    store = request.app[appkeys.STORE]
    error = None
    passwords = request.app[appkeys.PASSWORDS]
    # The current password is guessed no more freely here than at sign-in (a console left
    # signed in, a stolen session): the same count, per member and per address.
    address = client_address(request)
    attempt, wait = await _begin_attempt(request, session.member.id, address)
    if wait:
        shown = {"error": gettext("Too many wrong passwords. Try again later."), "done": False}
        response = page(request, "console/password.html", shown, 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if await passwords.verify(store, session.member.id, current) is None:
        log.warning("wrong current password for %r from %s", session.member.id, address)
        error = gettext("The current password is wrong.")
    else:
        await auth.attempt_succeeded(request, session.member.id, address, attempt)
        if new != again:
            error = gettext("The new passwords do not match.")
        else:
            try:
                check_new_password(new)
            except ValueError:
                error = gettext("A password needs 10 to 200 characters.")
    if error:
        return page(request, "console/password.html", {"error": error, "done": False}, 400)
    await passwords.set(store, session.member.id, new, request.app[appkeys.CLOCK]())
    await auth.revoke_all(request, session.member.id)  # every other browser is signed out
    member = await passwords.verify(store, session.member.id, new)
    assert member is not None
    response = page(request, "console/password.html", {"error": None, "done": True})
    await auth.start_session(request, member, response)
    return response


# -- lists --------------------------------------------------------------------------------


def _filters(request: web.Request) -> Filters:
    q = request.query
    view = q.get("view", "mine")
    return Filters(
        view=view if view in VIEWS else "mine",
        status=q.get("status", ""),
        channel=q.get("channel", ""),
        category=q.get("category", ""),
        department=q.get("department", ""),
        source=q.get("source", ""),
        q=q.get("q", "")[:100],
        before=q.get("before", "")[:80],
        since=q.get("from", "")[:20],
        until=q.get("to", "")[:20],
        member=q.get("member", "")[:64],
        company=q.get("company", "")[:200],
        measure=q.get("measure", "")[:40],
        reception=q.get("reception", "")[:20],
    )


async def _reception_of(request: web.Request, filters: Filters) -> Reception | None:
    """The reception a list is narrowed to, to name it (the list has checked the id)."""
    found = reception_id(filters.reception) if filters.reception else None
    return await request.app[appkeys.STORE].receptions.get(found) if found else None


async def cases(request: web.Request) -> web.StreamResponse:
    session = request[appkeys.SESSION]
    filters = _filters(request)
    config = request.app[appkeys.DIRECTORY].config
    now = request.app[appkeys.CLOCK]()
    try:
        page_of = await list_cases(
            request.app[appkeys.STORE], config, filters, session.member.id, now
        )
    except BadPosition:
        return _problem(
            request,
            400,
            gettext("This page of the list does not exist: start again from the first page."),
        )
    except Refusal as problem:  # a report's period or figure that is not one
        return _problem(request, 400, problem.explain())
    older = None
    if page_of.older:
        query = {k: v for k, v in request.query.items() if k not in ("before", "partial")}
        older = request.rel_url.with_query(query | {"before": page_of.older})
    template = "console/_rows.html" if request.query.get("partial") else "console/cases.html"
    banner = None
    schedule = await request.app[appkeys.DUTY].schedule(now)
    if schedule.on_duty(now) == session.member.id and not request.query.get("partial"):
        banner = await request.app[appkeys.TIMED].summary(session.member.id, now)
    context = {
        "cases": page_of.rows,
        "total": page_of.total,
        "filters": filters,
        "views": VIEWS,
        "now": now,
        "banner": banner,
        "older": older,
        "reception": await _reception_of(request, filters),
        "newest": request.rel_url.with_query(
            {k: v for k, v in request.query.items() if k not in ("before", "partial")}
        ),
    }
    return page(request, template, context)


async def case_page(request: web.Request) -> web.StreamResponse:
    code = normalize_code(request.match_info["code"])
    return await _case_page(request, code or "")


async def _case_page(
    request: web.Request, code: str, refused: dict[str, Any] | None = None, status: int = 200
) -> web.Response:
    """The case page; with `refused`, an action the member sent was refused: its message
    stands by its form, which keeps what they typed and chose."""
    store = request.app[appkeys.STORE]
    case = await store.cases.by_code(code) if code else None
    if case is None:
        return _problem(request, 404, gettext("There is no request with this code."))
    outbox = {item.id: item for item in await request.app[appkeys.OUTBOX].for_case(case.id)}
    now = request.app[appkeys.CLOCK]()
    replies = await request.app[appkeys.CANNED].all()
    events = await store.cases.events(case.id)
    messages = await store.cases.messages(case.id)
    referrals = await store.cases.referrals(case.id)
    # A reply is one entry: its event, with how it reached the submitter (its message, stored
    # with it: a text, or the public status page), not the same words twice.
    replies_out = {(m.at, m.body): m for m in messages if m.direction == "out"}
    timeline: list[tuple[datetime, str, Any, Message | None]] = []
    for e in events:
        said = (e.at, str(e.detail.get("text", "")))
        sent = replies_out.pop(said, None) if e.kind == "reply" else None
        timeline.append((e.at, "event", e, sent))
    for m in messages:
        if m.direction == "in" or (m.at, m.body) in replies_out:  # no reply of its own: alone
            timeline.append((m.at, "message", m, None))
    timeline.sort(key=lambda entry: entry[0])
    session = request[appkeys.SESSION]
    phone = case.submitter_phone
    # A reply reaches a submitter by text, unless no text can: then /track shows it.
    texted = (
        phone is not None
        and request.app[appkeys.SMS_PROVIDER] is not None
        and not await request.app[appkeys.OUTBOX].is_opted_out(phone)
    )
    context = {
        "case": case,
        "texted": texted,
        "reply_max": reply_max(case),
        "contact": case.contact_seen_by(session.member.id, session.member.role),
        "timeline": timeline,
        "referrals": [(r, r.state(now)) for r in referrals],
        "outbox": outbox,
        "actions": [a.value for a in allowed(case.status)],
        "clocks": clocks(case, request.app[appkeys.DIRECTORY].config, now),
        "now": now,
        "today": now.astimezone(request.app[appkeys.DIRECTORY].config.point.timezone).date(),
        "replies": replies,
        "members": request.app[appkeys.DIRECTORY].config.members,
        "departments": request.app[appkeys.DIRECTORY].config.departments,
        "refused": refused,
    }
    # A refusal answers the action's POST: the language switch reloads the case itself.
    here = request.app.router["console-case"].url_for(code=case.code) if refused else None
    return page(request, "console/case.html", context, status=status, here=here)


def referral_due_from(text: str, tz: ZoneInfo) -> datetime | None:
    """A referral's due date (a local date) as the end of that day, in UTC."""
    if not text:
        return None
    try:  # YYYY-MM-DD alone (fromisoformat also reads 20261201 and 2026-W49-2)
        if len(text) != 10 or text[4] != "-" or text[7] != "-":
            raise ValueError(text)
        day = date.fromisoformat(text)
    except ValueError:
        raise BadInput("due", N_("not a date such as 2026-12-01")) from None
    if not 1900 <= day.year <= 9000:
        raise BadInput("due", N_("a date in the years 1900 to 9000"))
    return referral_due(day, tz)


# What a refused action's form gives back as it was sent (besides the action and `public`).
_KEPT = ("text", "department", "due", "member")


def _given(value: object) -> str | None:
    """A form field that may be empty on purpose: None only when it was not sent."""
    return None if value is None else str(value)


async def act(request: web.Request) -> web.StreamResponse:
    session = request[appkeys.SESSION]
    code = normalize_code(request.match_info["code"]) or ""
    form = await read_form(request)
    config = request.app[appkeys.DIRECTORY].config

    async def refused(status: int, message: str) -> web.Response:
        """The case page again, the refusal by the form and what was typed kept in it."""
        kept: dict[str, Any] = {name: str(form.get(name, "")) for name in _KEPT}
        kept |= {"action": action.value, "public": form.get("public") in ("1", "on")}
        return await _case_page(request, code, kept | {"message": message}, status)

    try:
        action = Action(str(form.get("action", "")))
    except ValueError:
        return _problem(request, 400, "action: " + gettext("Unknown action."))
    try:
        due = referral_due_from(str(form.get("due", "")).strip(), config.point.timezone)
        req = Request(
            action=action,
            actor=session.member.id,
            text=str(form.get("text", "")) or None,
            department=str(form.get("department", "")) or None,
            due=due,
            member=str(form.get("member", "")) or None,
            seen_status=str(form.get("seen_status", "")) or None,
            seen_assignee=_given(form.get("seen_assignee")),
            public=form.get("public") in ("1", "on"),
        )
        await request.app[appkeys.CASEWORK].act(code, req, request.app[appkeys.CLOCK]())
    except BadInput as exc:
        return await refused(400, exc.explain())
    except InvalidTransition as exc:
        return await refused(409, transition_message(exc))
    except Conflict as exc:
        return await refused(409, gettext(exc.args[0]))
    except CaseNotFound:
        return _problem(request, 404, gettext("There is no request with this code."))
    raise web.HTTPSeeOther(request.app.router["console-case"].url_for(code=code))


def transition_message(exc: InvalidTransition) -> str:
    """Why an action was refused, in the reader's language."""
    params = dict(exc.params)
    if "action" in params:
        params["action"] = gettext(ACTION_NAMES.get(Action(params["action"]), params["action"]))
    if "status" in params:
        params["status"] = gettext(STATUS_LABELS.get(params["status"], params["status"]))
    return gettext(exc.message) % params


# -- live updates -----------------------------------------------------------------------


# How often an open stream looks whether its session still holds.
SESSION_CHECK = 5.0


async def _session_ended(request: web.Request, session: Session) -> bool:
    """Whether the stream's session is over; False while that cannot be known (Redis or the
    database not answering for a moment): the stream goes on, and the next look tells. An
    error here must not end the stream's loop with its headers sent: the page would stay
    "live" and never hear again."""
    try:
        return not await auth.still_signed_in(request, session)
    except REDIS_DOWN:
        return False
    except Exception:  # the database (failover, pool timeout): the same, and said
        log.warning("could not look at a live stream's session", exc_info=True)
        return False


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one message per case change, from the router and the console.
    Capped per member (429) and per process (503); see queue/live.py. A stream ends once its
    session does (signed out elsewhere, expired, the password changed): the browser's
    reconnection is refused, and the page says it no longer updates (console.js)."""
    session = request[appkeys.SESSION]
    loop = asyncio.get_running_loop()
    if request.transport is None or request.transport.is_closing():
        return web.Response(status=204)  # the tab went before its stream began: nothing to do
    try:
        with request.app[appkeys.LIVE].join(session.member.id) as queue:
            async with sse_response(request, ping_interval=15) as stream:
                stopping = request.app[appkeys.STOPPING]
                looked = loop.time()
                while stream.is_connected() and not stopping.is_set():
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        break  # the tab closed: free its place at once
                    if loop.time() - looked >= SESSION_CHECK:
                        looked = loop.time()
                        if await _session_ended(request, session):
                            break
                    with contextlib.suppress(TimeoutError):
                        data = await asyncio.wait_for(queue.get(), timeout=min(1.0, SESSION_CHECK))
                        try:
                            await stream.send(data)
                        except ConnectionResetError:
                            break
            return stream
    except TooManyStreams as exc:
        error = web.HTTPTooManyRequests if exc.status == 429 else web.HTTPServiceUnavailable
        raise error(text=exc.reason, headers={"Retry-After": "30"}) from None


# -- canned replies (heads and admins) --------------------------------------------------


async def replies(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.StreamResponse:
    auth.require_head(request)
    rows = await request.app[appkeys.CANNED].all()
    return page(request, "console/replies.html", {"replies": rows, "error": error}, status)


async def save_reply(request: web.Request) -> web.StreamResponse:
    """Add a canned reply, change one (`edit` = its id) or delete one (`delete` = its id)."""
    session = auth.require_head(request)
    errors = FieldErrors()
    values = single_values(await read_form(request), errors, ("title", "body", "edit", "delete"))
    target = values.get("delete") or values.get("edit") or ""
    if target and not is_number(target):
        errors.add("delete" if "delete" in values else "edit", N_("Not a valid number."))
    title = body = None
    if not values.get("delete"):
        title = clean_text(errors, "title", values.get("title"), max_length=100, required=True)
        body = clean_text(
            errors, "body", values.get("body"), max_length=2000, required=True, multiline=True
        )
    if errors:
        shown = "; ".join(named(k, text) for k, text in errors.translated().items())
        return await replies(request, error=shown, status=400)

    saved = await request.app[appkeys.CANNED].save(
        title, body, session.member.id, request.app[appkeys.CLOCK](),
        change=int(target) if target else None, delete=bool(values.get("delete")),
    )  # fmt: skip
    if not saved:
        error = gettext("That canned reply is gone: someone deleted it meanwhile.")
        return await replies(request, error=error, status=404)
    raise web.HTTPSeeOther(request.app.router["console-replies"].url_for())


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(request.app.router["console-cases"].url_for())
