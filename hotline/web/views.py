"""Public pages: the web form, the case-status page, health checks."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web
from yarl import URL

from hotline import appkeys
from hotline.channels.fields import FieldErrors, is_tag
from hotline.channels.webform import parse_submission, single_values
from hotline.service import tracking
from hotline.service.cases import normalize_code, to_utc_text
from hotline.service.casework import Conflict
from hotline.service.i18n import N_, gettext
from hotline.service.workflow import LOW_RATING, OPEN, InvalidTransition
from hotline.web import csrf, limits
from hotline.web.forms import read_form
from hotline.web.middlewares import wants_json
from hotline.web.render import render

log = logging.getLogger(__name__)


async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(request.app.router["submit"].url_for())


def _form_context(request: web.Request, values: dict[str, str]) -> dict[str, Any]:
    config = request.app[appkeys.DIRECTORY].config
    lang = request[appkeys.LANG]
    return {
        "categories": [(c.code, c.name(lang)) for c in config.categories],
        "values": values,
        "csrf_token": csrf.token(request),
        "action": request.app.router["submit-post"].url_for(),
        # With no SMS provider nothing is texted: the phone is for a call back.
        "texts": request.app[appkeys.SETTINGS].twilio.can_send,
    }


async def _render_form(
    request: web.Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.StreamResponse:
    context = _form_context(request, values) | {"errors": errors} | await duty_names(request)
    response = render(request, "submit.html", context, status=status)
    return csrf.attach(request, response)


async def duty_names(request: web.Request) -> dict[str, Any]:
    """Who is on duty now and next (names only), for the public pages."""
    config = request.app[appkeys.DIRECTORY].config
    current, following = await request.app[appkeys.DUTY].now_and_next(request.app[appkeys.CLOCK]())

    def name(member_id: str | None) -> str | None:
        member = config.member(member_id) if member_id else None
        return member.name if member else None

    backstop = config.duty.outside_hours == "standing-head" and current is None
    return {
        "duty_now": name(current),
        # Outside duty hours the standing head takes requests (outside_hours), if so set.
        "duty_backstop": name(config.duty.standing_head) if backstop else None,
        "duty_next": name(following.member_id) if following else None,
        "duty_next_at": following.start if following else None,
    }


async def submit_form(request: web.Request) -> web.StreamResponse:
    src = request.query.get("src")
    values = {"idem": uuid.uuid4().hex, "src": src.strip().lower() if is_tag(src) and src else ""}
    return await _render_form(request, values, {})


async def _bad_request(
    request: web.Request, values: dict[str, str], errors: FieldErrors, status: int = 400
) -> web.StreamResponse:
    if wants_json(request):
        return web.json_response({"errors": errors.english()}, status=status)
    return await _render_form(request, values, errors.translated(), status=status)


async def read_submission(request: web.Request) -> tuple[dict[str, str], FieldErrors, str | None]:
    """A posted request form: its fields, their first problems, and the CSRF verdict."""
    form = await read_form(request)
    errors = FieldErrors()
    values = single_values(form, errors)
    return values, errors, csrf.problem(request, form.get(csrf.FIELD))


async def submit(request: web.Request) -> web.StreamResponse:
    values, errors, token_problem = await read_submission(request)
    if token_problem:
        if wants_json(request):
            return web.json_response({"errors": {csrf.FIELD: token_problem}}, status=403)
        errors.add(csrf.FIELD, token_problem)
        return await _bad_request(request, values, errors, status=403)
    intake = parse_submission(
        values,
        errors,
        request.app[appkeys.DIRECTORY].config,
        received_at=request.app[appkeys.CLOCK](),
        language=request[appkeys.LANG],
        idempotency_header=request.headers.get("Idempotency-Key"),
    )
    if intake is None:
        return await _bad_request(request, values, errors)
    submitted = await request.app[appkeys.INTAKE].submit(intake)
    track_url = str(request.app.router["track"].url_for(code=submitted.code))
    if wants_json(request):
        return web.json_response({"code": submitted.code, "status_url": track_url}, status=201)
    resumes = await request.app[appkeys.DUTY].handling_resumes(intake.received_at)
    # Another request from the same poster keeps its tag.
    another = request.app.router["submit"].url_for()
    if intake.source_tag:
        another = another.with_query(src=intake.source_tag)
    context = {
        "code": submitted.code,
        "track_url": track_url,
        "resumes": resumes,
        "another": str(another),
    }
    # The language switch goes to the request's status page (this answer to a POST cannot
    # be opened again): the code stays in view.
    return render(request, "submitted.html", context, status=201, here=URL(track_url))


def _shown(typed: str) -> str:
    """What was typed, to show it back in the box: printable characters, not too many."""
    return "".join(ch for ch in typed[:64] if ch.isprintable())


async def track_find(request: web.Request) -> web.StreamResponse:
    """GET /track[?code=...]: a box to type a code in (a slip, a text read out); a code
    that can be one goes to its page, where lookups are counted as everywhere."""
    typed = request.query.get("code")
    if typed is None:
        return render(request, "track_find.html", {"typed": "", "problem": None})
    code = normalize_code(typed)
    if code is None:
        problem = (
            gettext("This is not a request code: 7 letters and digits.")
            if typed.strip()
            else gettext("Type the code of your request: 7 letters and digits.")
        )
        page = {"typed": _shown(typed), "problem": problem}
        return render(request, "track_find.html", page, status=400)
    raise web.HTTPSeeOther(request.app.router["track"].url_for(code=code))


async def track(request: web.Request) -> web.StreamResponse:
    await limits.count_lookup(request)
    found = await tracking.track(
        request.app[appkeys.STORE], request.app[appkeys.INTAKE], request.match_info["code"]
    )
    if found is None:
        if wants_json(request):
            return web.json_response({"error": "no case with this code"}, status=404)
        problem = gettext("There is no request with this code. Check it and try again.")
        box = {"typed": _shown(request.match_info["code"]), "problem": problem}
        return render(request, "track_find.html", box, status=404)
    await limits.refund_lookup(request)  # a known code: no guess
    if isinstance(found, tracking.Moved):
        raise web.HTTPFound(request.app.router["track"].url_for(code=found.code))
    assignee = {"id": found.assignee[0], "name": found.assignee[1]} if found.assignee else None
    if wants_json(request):
        return web.json_response(
            {
                "code": found.code,
                "status": found.status,
                "channel": found.channel,
                "received_at": to_utc_text(found.received_at),
                "updated_at": to_utc_text(found.updated_at),
                "assignee": assignee,
                "events": [{"at": to_utc_text(at), "status": s} for at, s in found.timeline],
            }
        )
    case = found.case
    rating_open = bool(case and case.rating_pending)
    page = {
        "code": found.code,
        "status": found.status,
        "received": found.received_at,
        "updated": found.updated_at,
        "assignee": {"id": found.assignee[0], "name": found.assignee[1]}
        if found.assignee
        else None,
        "timeline": found.timeline,
        "replies": found.replies,
        "answers": [
            (at, _department_name(request, department), text)
            for at, department, text in found.answers
        ],
        # What was done, once the point says it is resolved (it went to the submitter too).
        "outcome": case.outcome if case and case.resolved_at else None,
        "reason": found.reason,
        "rating_open": rating_open,
        "rating": case.rating if case else None,
        # A low rating reopened it: being looked at again (until it is resolved again).
        "again": bool(case and case.rating and case.rating <= LOW_RATING and case.status in OPEN),
        "registering": found.registering,
        "csrf_token": csrf.token(request) if rating_open else "",
    }
    return csrf.attach(request, render(request, "track.html", page))


def _department_name(request: web.Request, department_id: str | None) -> str | None:
    config = request.app[appkeys.DIRECTORY].config
    department = config.department(department_id) if department_id else None
    return department.name if department else None


async def rate(request: web.Request) -> web.StreamResponse:
    """The submitter's 1-5 rating from the status page; the first rating counts."""
    code = normalize_code(request.match_info["code"])
    store = request.app[appkeys.STORE]
    case = await store.cases.by_code(code) if code else None
    if case is None:
        raise web.HTTPNotFound(text=N_("no case with this code"))
    form = await read_form(request)
    problem = csrf.problem(request, form.get(csrf.FIELD))
    if problem:
        raise web.HTTPForbidden(text="csrf_token: " + gettext(problem))
    raw = form.get("rating")
    if not isinstance(raw, str) or raw not in ("1", "2", "3", "4", "5"):
        raise web.HTTPBadRequest(text=N_("rating: a whole number from 1 to 5"))
    if not case.rating_pending:
        raise web.HTTPConflict(text=gettext("This request is not waiting for a rating."))
    try:
        await request.app[appkeys.CASEWORK].rate(
            case, int(raw), request.app[appkeys.CLOCK](), "web"
        )
    except (Conflict, InvalidTransition) as exc:
        raise web.HTTPConflict(text=str(exc)) from exc
    raise web.HTTPSeeOther(request.app.router["track"].url_for(code=case.code))
