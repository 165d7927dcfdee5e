"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): the wire format. Services are
the point's categories, service requests its cases; JSON and XML with the spec's element
names and nesting; a POST's parameters checked by the web form's rules into an Intake of
channel `open311`; errors as the spec's list of {code, description}."""

from __future__ import annotations

import dataclasses
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from multidict import MultiMapping

from hotline.channels.fields import FieldErrors, blank, clean_text
from hotline.channels.webform import TEXT_MAX, parse_submission
from hotline.service.cases import Case, Intake, Status
from hotline.service.config import PointConfig
from hotline.service.i18n import N_

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-26T00:00:00Z"  # when this endpoint last changed what it answers
FORMATS = {"json": "application/json", "xml": "text/xml"}
STATUS_OPEN, STATUS_CLOSED = "open", "closed"
# Closed in Open311's terms (DESIGN.md): ended one way or another; a resolved case waiting
# for its rating is still open.
CLOSED = frozenset({Status.CLOSED, Status.WITHDRAWN, Status.REJECTED})
STATUSES = {STATUS_OPEN: frozenset(Status) - CLOSED, STATUS_CLOSED: CLOSED}
# The one attribute every service takes (its metadata): the company a request is for.
COMPANY = "company"
# GET requests: at most this many, from the last 90 days unless dates say otherwise.
REQUESTS_MAX = 1000
REQUESTS_DAYS = 90
IDS_MAX = 100  # service_request_id=a,b,c...
# Open311 clients run in browsers too (a city's map of requests): any page may read what
# the spec serves. No cookie is ever involved (a key is a parameter), so "*" gives no page
# more than any client has.
CORS = {"Access-Control-Allow-Origin": "*"}
POST_FIELDS = frozenset({
    "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id", "email",
    "device_id", "account_id", "first_name", "last_name", "phone", "description", "media_url",
    "api_key", f"attribute[{COMPANY}]",
})  # fmt: skip

# Decimal degrees as clients write them: a sign, up to 20 decimals (a phone's GPS gives 15 or
# so), "30." and ".5" too; never an exponent, "_" or full-width digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,3}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})")
# A name in Chinese (or Japanese, Korean) is written family name first, without a space.
_CJK = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
# XML: a list's element name -> the name of each item in it.
_ITEMS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str


def encode(fmt: str, root: str, data: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> Answer:
    """`data` as the spec writes it: JSON as is; XML under `root` (a list's items named as
    the spec names them), UTF-8 with its declaration."""
    if fmt == "json":
        return Answer(json.dumps(data, ensure_ascii=False).encode(), FORMATS["json"])
    element = ET.Element(root)
    _fill(element, data)
    body = ET.tostring(element, encoding="unicode").encode()
    return Answer(b'<?xml version="1.0" encoding="UTF-8"?>\n' + body, FORMATS["xml"])


def _fill(element: ET.Element, data: Any) -> None:
    if isinstance(data, Mapping):
        for name, value in data.items():
            _fill(ET.SubElement(element, name), value)
    elif isinstance(data, list | tuple):
        for item in data:
            _fill(ET.SubElement(element, _ITEMS[element.tag]), item)
    elif isinstance(data, bool):
        element.text = "true" if data else "false"
    elif isinstance(data, float):  # a decimal as written (str() would give 1e-05)
        element.text = format(Decimal(repr(data)), "f")
    elif data is not None:
        # XML 1.0 cannot carry most C0 controls, escaped or not (none should reach here).
        element.text = _NOT_XML.sub("\ufffd", str(data))


def errors(fmt: str, status: int, descriptions: Sequence[str]) -> Answer:
    """The spec's error answer: a list of {code, description}."""
    return encode(fmt, "errors", [{"code": status, "description": d} for d in descriptions])


def local_time(at: datetime | None, tz: ZoneInfo) -> str | None:
    """ISO 8601 with the point's offset, as the spec's examples write it."""
    return at.astimezone(tz).isoformat(timespec="seconds") if at else None


def discovery(base: str, contact: str) -> dict[str, Any]:
    return {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": "Ask the point for an API token (hotline token create NAME --scope write).",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": f"{base}/open311/v2",
                "changeset": CHANGESET,
                "type": "production",
                "formats": [FORMATS["xml"], FORMATS["json"]],
            }
        ],
    }


def services(config: PointConfig, language: str) -> list[dict[str, Any]]:
    """The point's categories as services; `group` is the department that handles one."""
    out = []
    for category in config.categories:
        department = config.department(category.department) if category.department else None
        out.append({
            "service_code": category.code,
            "service_name": category.name(language),
            "description": category.name(language),
            "metadata": True,
            "type": "realtime",
            "keywords": category.code,
            "group": department.name if department else None,
        })  # fmt: skip
    return out


def definition(code: str, language: str) -> dict[str, Any]:
    """A service's attributes: the company, the one thing a case keeps beyond the spec's."""
    described = "Company (企业名称)" if language == "en" else "企业名称"
    return {
        "service_code": code,
        "attributes": [
            {
                "variable": True,
                "code": COMPANY,
                "datatype": "string",
                "required": False,
                "datatype_description": "至多 200 字 (at most 200 characters)",
                "order": 1,
                "description": described,
            }
        ],
    }


def request_json(
    case: Case,
    config: PointConfig,
    language: str,
    notes: str | None,
    updated: datetime | None = None,
) -> dict[str, Any]:
    """A case as a service request: `status_notes` is the outcome once it is resolved, the
    reason a withdrawn or rejected one was ended with (given as `notes`), else the latest
    public reply or department's answer marked public (`notes`: never a reply sent by SMS
    to the submitter alone), as /track shows them; `agency_responsible` the department
    referred to. No submitter's name or phone."""
    tz = config.point.timezone
    if case.resolved_at is not None and case.outcome:  # the point's last word on it
        notes = case.outcome
    category = config.category(case.category) if case.category else None
    agency = case.with_department  # not one a referral was taken back from
    department = config.department(agency) if agency else None
    return {
        "service_request_id": case.code,
        "status": STATUS_CLOSED if case.status in CLOSED else STATUS_OPEN,
        "status_notes": notes,
        "service_name": category.name(language) if category else None,
        "service_code": case.category,
        "description": case.text,
        "agency_responsible": department.name if department else None,
        "service_notice": None,
        "requested_datetime": local_time(case.received_at, tz),
        # What the submitter may see changed last (store `public_updates`), as on /track; a
        # case loaded without its log has only its own time to go by.
        "updated_datetime": local_time(updated or case.updated_at, tz),
        "expected_datetime": _expected(case, tz),
        "address": case.address,
        "address_id": None,
        "zipcode": None,
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": None,
    }


def _number(errors: FieldErrors, name: str, value: str | None, limit: float) -> float | None:
    if value is None or value == "":
        return None
    # Plain decimal digits only: float() would also take "1_0", "１０" and "1e2".
    if not _DECIMAL.fullmatch(value):
        errors.add(name, N_("A number in decimal degrees, such as 30.7512."))
        return None
    number = float(value)
    if not -limit <= number <= limit:
        errors.add(name, N_("A number from -%(limit)d to %(limit)d."), limit=int(limit))
        return None
    return number


def _full_name(first: str | None, last: str | None) -> str:
    """first_name and last_name as the name is written: 王明 (family name first) in Chinese,
    "Ming Wang" otherwise."""
    if first and last and (_CJK.search(first) or _CJK.search(last)):
        return f"{last}{first}"
    return " ".join(n for n in (first, last) if n)


def _expected(case: Case, tz: ZoneInfo) -> str | None:
    """When the request can be expected to be fulfilled: its resolution due time while it is
    being handled; once resolved (waiting for a rating, or closed after it), when it was;
    withdrawn, rejected or closed unresolved, never (null)."""
    if case.resolved_at is not None:
        return local_time(case.resolved_at, tz)
    if case.status in CLOSED:
        return None
    return local_time(case.resolution_due, tz)


def parse_request(
    form: MultiMapping[str],
    errors: FieldErrors,
    config: PointConfig,
    *,
    received_at: datetime,
) -> Intake | None:
    """A POST's parameters (every problem collected) into an Intake of channel `open311`.
    `description` is the request; `service_code` its category; first and last name the
    submitter's; where it is (an address, a position, a photo's URL) joins the text, and the
    address and the position are kept as they were given as well."""
    for name in form:
        if len(form.getall(name)) > 1:
            errors.add(name[:64], N_("Given more than once."))
        elif name.startswith("attribute[") and name not in POST_FIELDS:
            errors.add(name[:64], N_("Not an attribute of this service."))
    jurisdiction = form.get("jurisdiction_id")
    if jurisdiction and jurisdiction != config.point.id:  # given empty, as not given
        errors.add("jurisdiction_id", N_("Not this point's jurisdiction_id."))
    code = form.get("service_code", "")
    if not code:
        errors.add("service_code", N_("This field is required."))
    elif config.category(code) is None:
        errors.add("service_code", N_("Unknown category."))
    first = clean_text(errors, "first_name", form.get("first_name"), max_length=49)
    last = clean_text(errors, "last_name", form.get("last_name"), max_length=49)
    address = clean_text(errors, "address_string", form.get("address_string"), max_length=200)
    # The spec's third way to say where (an id in the jurisdiction's address register): we
    # keep no register, so it joins the text as the address does, never dropped.
    address_id = clean_text(errors, "address_id", form.get("address_id"), max_length=100)
    media = clean_text(errors, "media_url", form.get("media_url"), max_length=1000)
    if media and not media.startswith(("http://", "https://")):
        errors.add("media_url", N_("An http:// or https:// address."))
    lat = _number(errors, "lat", form.get("lat"), 90)
    long = _number(errors, "long", form.get("long"), 180)
    if (lat is None) != (long is None) and "lat" not in errors.errors:
        errors.add("lat" if lat is None else "long", N_("lat and long go together."))
    text = form.get("description") or ""
    position = f"{lat}, {long}" if lat is not None else None
    where = [w for w in (address, address_id and f"address_id: {address_id}", position, media) if w]
    # Empty as the text's own check has it (spaces, U+200B...): then nothing is joined, and
    # the description is refused as missing, whatever else came with it.
    if not blank(text) and where:
        # The description's own limit leaves room for what is joined to it.
        appendix = "\n\n" + "\n".join(where)
        room = TEXT_MAX - len(appendix)
        if len(text.rstrip()) > room:
            errors.add("description", N_("Too long: at most %(max)d characters (this has"
                       " %(length)d)."), max=room, length=len(text.rstrip()))  # fmt: skip
        text = text.rstrip() + appendix
    values = {
        "text": text,
        "category": code,
        "company": form.get(f"attribute[{COMPANY}]") or "",
        "name": _full_name(first, last),
        "phone": form.get("phone") or "",
    }
    intake = parse_submission(
        values, errors, config, received_at=received_at, language=config.point.language,
        channel="open311",
    )  # fmt: skip
    if intake is None or errors:
        if "text" in errors.errors:
            errors.errors.setdefault("description", errors.errors.pop("text"))
        if "category" in errors.errors:
            errors.errors.setdefault("service_code", errors.errors.pop("category"))
        if "company" in errors.errors:
            errors.errors[f"attribute[{COMPANY}]"] = errors.errors.pop("company")
        return None
    # Kept as given too, so a GET gives them back (the text carries them for the console).
    return dataclasses.replace(intake, address=address, latitude=lat, longitude=long)
