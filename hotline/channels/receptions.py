"""The forms of themed receptions: a head's plan of an event (console) and a business's
sign-up (public page). Each check collects every problem, field by field, like the web form."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from multidict import MultiMapping

from hotline.channels.fields import FieldErrors, clean_phone, clean_text, is_number
from hotline.channels.webform import single_values
from hotline.service.config import PointConfig
from hotline.service.i18n import N_
from hotline.service.receptions import Plan

TOPIC_MAX, PLACE_MAX, DETAILS_MAX, RAISE_MAX = 200, 200, 2000, 2000
CAPACITY_MAX = 1000
HORIZON = timedelta(days=2 * 366)  # an event is planned at most about two years ahead
PLAN_FIELDS = ("topic", "details", "place", "date", "start", "end", "capacity")
SIGNUP_FIELDS = ("company", "name", "phone", "text")
_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _day(errors: FieldErrors, value: str | None) -> date | None:
    text = (value or "").strip()
    if not text:
        errors.add("date", N_("This field is required."))
        return None
    try:
        if not _DAY.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        errors.add("date", N_("Not a date (YYYY-MM-DD)."))
        return None


def _clock(errors: FieldErrors, name: str, value: str | None) -> time | None:
    text = (value or "").strip()
    if not text:
        errors.add(name, N_("This field is required."))
        return None
    if not _CLOCK.fullmatch(text):
        errors.add(name, N_("Not a time of day (HH:MM, 24-hour)."))
        return None
    return time.fromisoformat(text)


def _chosen(
    form: MultiMapping[str], errors: FieldErrors, name: str, known: set[str]
) -> tuple[str, ...]:
    """The ids ticked in a repeated field, each one known, none twice."""
    given = [str(v) for v in form.getall(name, [])]
    if any(v not in known for v in given) or len(set(given)) != len(given):
        errors.add(name, N_("Choose from the list."))
        return ()
    return tuple(given)


def parse_plan(
    form: MultiMapping[str], errors: FieldErrors, config: PointConfig, now: datetime
) -> Plan | None:
    """A head's event form -> Plan, or None with every problem in `errors`. The event's
    date and times are the point's local ones; it must start in the future and end the
    same day after it starts."""
    values = single_values(form, errors, PLAN_FIELDS)
    topic = clean_text(errors, "topic", values.get("topic"), max_length=TOPIC_MAX, required=True)
    details = clean_text(
        errors, "details", values.get("details"), max_length=DETAILS_MAX, multiline=True
    )
    place = clean_text(errors, "place", values.get("place"), max_length=PLACE_MAX, required=True)
    day = _day(errors, values.get("date"))
    start = _clock(errors, "start", values.get("start"))
    end = _clock(errors, "end", values.get("end"))
    # Deputies are the point's heads and representatives (an admin runs the system).
    deputies = _chosen(
        form, errors, "deputies", {m.id for m in config.members if m.role != "admin"}
    )
    departments = _chosen(form, errors, "departments", {d.id for d in config.departments})
    raw = (values.get("capacity") or "").strip()
    capacity = int(raw) if is_number(raw) else 0
    if not 1 <= capacity <= CAPACITY_MAX:
        errors.add("capacity", N_("A whole number from 1 to %(max)d."), max=CAPACITY_MAX)
    if not deputies:
        errors.add("deputies", N_("Choose at least one deputy."))
    starts = ends = None
    if day is not None and start is not None and end is not None:
        tz = config.point.timezone
        starts = datetime.combine(day, start, tzinfo=tz)
        ends = datetime.combine(day, end, tzinfo=tz)
        if ends <= starts:
            errors.add("end", N_("Must be after the start."))
        elif starts <= now:
            errors.add("date", N_("Must be in the future."))
        elif starts > now + HORIZON:
            errors.add("date", N_("At most two years ahead."))
    if errors or topic is None or place is None or starts is None or ends is None:
        return None
    return Plan(
        topic=topic,
        details=details or "",
        place=place,
        starts_at=starts,
        ends_at=ends,
        deputies=deputies,
        departments=departments,
        capacity=capacity,
    )


def parse_signup(form: MultiMapping[str], errors: FieldErrors) -> dict[str, str] | None:
    """A business's sign-up -> the stored fields (company, contact, phone, raise_text), or
    None with every problem in `errors`. All four are required: the phone gets the reminder."""
    values = single_values(form, errors, SIGNUP_FIELDS)
    company = clean_text(errors, "company", values.get("company"), max_length=200, required=True)
    name = clean_text(errors, "name", values.get("name"), max_length=100, required=True)
    phone = clean_phone(errors, "phone", values.get("phone"), required=True)
    text = clean_text(
        errors, "text", values.get("text"), max_length=RAISE_MAX, required=True, multiline=True
    )
    if errors or company is None or name is None or phone is None or text is None:
        return None
    return {"company": company, "contact": name, "phone": phone, "raise_text": text}
