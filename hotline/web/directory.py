"""Heads' and admins' console pages for the point's directory: members, departments and
topics (categories), edited on top of the point config file (see service/directory.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hotline import appkeys
from hotline.channels.fields import FieldErrors, clean_phone, clean_text, is_number
from hotline.channels.webform import single_values
from hotline.queue.errors import REDIS_DOWN
from hotline.service.config import ID_PATTERN, ROLES, parse_duration
from hotline.service.directory import Directory
from hotline.service.i18n import N_, gettext
from hotline.service.overlay import KINDS, Actor, Changed, DirectoryError, NotAllowed
from hotline.web import auth
from hotline.web.console import page
from hotline.web.forms import read_form

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAME_MAX = 100
COMPANIES_MAX = 50
FIELDS = {
    "members": ("id", "name", "phone", "role", "companies", "password"),
    "departments": ("id", "name"),
    "categories": ("code", "name_zh", "name_en", "department", "respond_within",
                   "resolve_within"),
}  # fmt: skip
ROUTES = {  # kind -> (list page, entry page)
    "members": ("console-members", "console-member"),
    "departments": ("console-departments", "console-department"),
    "categories": ("console-categories", "console-category"),
}


# -- reading the forms -------------------------------------------------------------------


def _key(errors: FieldErrors, name: str, value: str | None) -> str | None:
    text = (value or "").strip().lower()
    if not text:
        errors.add(name, N_("This field is required."))
        return None
    if not ID_PATTERN.match(text):
        errors.add(name, N_("Use lowercase letters, digits, - or _ (at most 32)."))
        return None
    return text


def _duration(errors: FieldErrors, name: str, value: str | None) -> str | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        parse_duration(text)
    except ValueError:
        errors.add(name, N_("Not a duration such as 30m, 4h, 2d or 1w."))
        return None
    return text


def _companies(errors: FieldErrors, value: str | None) -> list[str]:
    text = clean_text(errors, "companies", value, max_length=10_000, multiline=True)
    names = list(dict.fromkeys(line.strip() for line in (text or "").split("\n") if line.strip()))
    if len(names) > COMPANIES_MAX:
        errors.add("companies", N_("At most %(max)d companies."), max=COMPANIES_MAX)
    elif any(len(name) > NAME_MAX or "\t" in name for name in names):
        errors.add("companies", N_("One company per line, each at most %(max)d characters."),
                   max=NAME_MAX)  # fmt: skip
    return names


def read_record(kind: str, values: dict[str, str], key: str | None) -> dict[str, Any]:
    """The entry a form describes, as the config file would write it; raises FieldErrors.
    `key` is the entry's id when editing (ids never change: cases refer to them)."""
    errors = FieldErrors()
    field = KINDS[kind]
    record: dict[str, Any] = {field: key or _key(errors, field, values.get(field))}
    if kind == "categories":
        names = {
            lang: clean_text(errors, f"name_{lang}", values.get(f"name_{lang}"),
                             max_length=NAME_MAX, required=True)
            for lang in ("zh", "en")
        }  # fmt: skip
        record["name"] = names
        department = (values.get("department") or "").strip()
        if department:
            record["department"] = department
        for name in ("respond_within", "resolve_within"):
            duration = _duration(errors, name, values.get(name))
            if duration:
                record[name] = duration
    else:
        record["name"] = clean_text(
            errors, "name", values.get("name"), max_length=NAME_MAX, required=True
        )
    if kind == "members":
        phone = clean_phone(errors, "phone", values.get("phone"))
        if phone:
            record["phone"] = phone
        role = values.get("role", "")
        if role not in ROLES:
            errors.add("role", N_("Choose one of the roles."))
        record["role"] = role
        record["companies"] = _companies(errors, values.get("companies"))
    if errors:
        raise errors
    return record


def form_values(kind: str, record: dict[str, Any] | None) -> dict[str, str]:
    """An entry as the edit form shows it."""
    if record is None:
        return {"role": "rep"} if kind == "members" else {}
    values = {k: v for k, v in record.items() if isinstance(v, str)}
    if kind == "members":
        values["companies"] = "\n".join(record.get("companies", []))
    if kind == "categories":
        values["name_zh"], values["name_en"] = record["name"]["zh"], record["name"]["en"]
    return values


def _seen(raw: str, errors: FieldErrors) -> int | None:
    """The edit a form was made from (Entry.seq); absent from forms that need no check."""
    if not raw:
        return None
    if not is_number(raw) or len(raw) > 12:
        errors.add("seen", N_("Not a valid number."))
        return None
    return int(raw)


def _refused(exc: DirectoryError) -> dict[str, str]:
    return {exc.field or "form": exc.text()}


# -- pages ----------------------------------------------------------------------------


def _actor(request: web.Request) -> Actor:
    session = auth.require_head(request)
    return Actor(session.member.id, session.member.role)


async def _context(request: web.Request, kind: str) -> dict[str, Any]:
    directory: Directory = request.app[appkeys.DIRECTORY]
    context: dict[str, Any] = {"kind": kind, "entries": directory.entries(kind)}
    if kind == "members":
        context["with_password"] = await request.app[appkeys.STORE].accounts.with_password()
    return context


def listing(kind: str) -> tuple[Handler, Handler]:
    """GET and POST handlers for one kind's list page (POST adds an entry)."""

    async def show(
        request: web.Request, values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
    ) -> web.StreamResponse:  # fmt: skip
        _actor(request)
        context = await _context(request, kind)
        removed = request.app[appkeys.DIRECTORY].entry(kind, request.query.get("removed", ""))
        context |= {
            "values": values or form_values(kind, None),
            "errors": errors or {},
            "removed": removed.key if removed and removed.record is None else "",
        }
        return page(request, "console/directory.html", context, 400 if errors else 200)

    async def get(request: web.Request) -> web.StreamResponse:
        return await show(request)

    async def add(request: web.Request) -> web.StreamResponse:
        actor = _actor(request)
        errors = FieldErrors()
        values = single_values(await read_form(request), errors, FIELDS[kind])
        password = values.pop("password", "")  # never shown back
        if errors:
            return await show(request, values, errors.translated())
        try:
            record = read_record(kind, values, None)
            hashed = await _hash(request, password) if password else None
            await request.app[appkeys.DIRECTORY].save(
                kind, record, actor, request.app[appkeys.CLOCK](), new=True, password_hash=hashed
            )
        except FieldErrors as exc:
            return await show(request, values, exc.translated())
        except NotAllowed as exc:
            raise web.HTTPForbidden(text=exc.explain()) from None
        except DirectoryError as exc:
            return await show(request, values, _refused(exc))
        key = record[KINDS[kind]]
        url = request.app.router[ROUTES[kind][1]].url_for(key=key).with_query(done="added")
        raise web.HTTPSeeOther(url)

    return get, add


async def _hash(request: web.Request, password: str) -> str:
    try:
        return await request.app[appkeys.PASSWORDS].hash_new(password)
    except ValueError:
        errors = FieldErrors()
        errors.add("password", N_("A password needs 10 to 200 characters."))
        raise errors from None


def entry(kind: str) -> tuple[Handler, Handler]:
    """GET and POST handlers for one entry's page: edit, remove, undo the console's edit,
    and (members) set a password."""

    async def show(
        request: web.Request, values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None, status: int | None = None,
    ) -> web.StreamResponse:  # fmt: skip
        _actor(request)
        status = status or (400 if errors else 200)
        directory: Directory = request.app[appkeys.DIRECTORY]
        key = request.match_info["key"]
        found = directory.entry(kind, key)
        if found is None:
            raise web.HTTPNotFound(text=N_("no such entry"))
        context = await _context(request, kind) | {
            "entry": found,
            # Translated here, never in the template: they may quote what someone typed.
            "problems": [gettext(p) for p in found.problems],
            "values": values or form_values(kind, found.record),
            "errors": errors or {},
            "history": await directory.history(kind, key),
            "done": request.query.get("done", ""),
        }
        return page(request, "console/directory_entry.html", context, status)

    async def get(request: web.Request) -> web.StreamResponse:
        return await show(request)

    async def change(request: web.Request) -> web.StreamResponse:
        actor = _actor(request)
        key = request.match_info["key"]
        directory: Directory = request.app[appkeys.DIRECTORY]
        now = request.app[appkeys.CLOCK]()
        form = await read_form(request)
        errors = FieldErrors()
        values = single_values(form, errors, (*FIELDS[kind], "do", "seen"))
        do = values.pop("do", "save")
        seen = _seen(values.pop("seen", ""), errors)
        password = values.pop("password", "")  # never shown back
        shown = values if do == "save" else None  # else: the stored entry, not a blank form
        if errors:
            return await show(request, shown, errors.translated())
        try:
            if do == "save":
                record = read_record(kind, values, key)
                await directory.save(kind, record, actor, now, new=False, seen=seen)
            elif do == "remove":
                await directory.remove(kind, key, actor, now, seen=seen)
            elif do == "revert":
                await directory.revert(kind, key, actor, now)
            elif do == "password" and kind == "members":
                await directory.set_password(actor, key, await _hash(request, password), now)
                with contextlib.suppress(*REDIS_DOWN):  # the new stamp already ends them
                    await auth.revoke_all(request, key)
            else:
                errors.add("do", N_("Unknown action."))
                raise errors
        except FieldErrors as exc:
            return await show(request, shown, exc.translated())
        except NotAllowed as exc:
            raise web.HTTPForbidden(text=exc.explain()) from None
        except Changed as exc:
            return await show(request, None, _refused(exc), status=409)
        except DirectoryError as exc:
            return await show(request, shown, _refused(exc))
        if do == "remove":
            url = request.app.router[ROUTES[kind][0]].url_for().with_query(removed=key)
        else:
            url = request.app.router[ROUTES[kind][1]].url_for(key=key).with_query(done=do)
        raise web.HTTPSeeOther(url)

    return get, change


def setup(app: web.Application) -> None:
    for kind, (list_route, entry_route) in ROUTES.items():
        path = "/console/" + kind
        show_list, add = listing(kind)
        app.router.add_get(path, show_list, name=list_route)
        app.router.add_post(path, add)
        show_entry, change = entry(kind)
        app.router.add_get(path + "/{key}", show_entry, name=entry_route)
        app.router.add_post(path + "/{key}", change)
