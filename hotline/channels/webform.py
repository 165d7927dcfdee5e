"""The public web form (`/submit`): its fields, their limits, and the Intake they make."""

from __future__ import annotations

import uuid
from datetime import datetime

from multidict import MultiMapping

from hotline.channels.fields import FieldErrors, clean_key, clean_phone, clean_tag, clean_text
from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.i18n import N_

TEXT_MAX = 4000
FIELDS = ("text", "category", "company", "name", "phone", "src", "idem", "urgent")


def single_values(
    form: MultiMapping[str],
    errors: FieldErrors,
    fields: tuple[str, ...] = FIELDS,
) -> dict[str, str]:
    """The form's known fields as plain strings; files and repeated fields are errors."""
    values: dict[str, str] = {}
    for name in fields:
        given = form.getall(name, [])
        if len(given) > 1:
            errors.add(name, N_("Given more than once."))
        elif given:
            values[name] = given[0]
    return values


def parse_submission(
    values: dict[str, str],
    errors: FieldErrors,
    config: PointConfig,
    *,
    received_at: datetime,
    language: str,
    idempotency_header: str | None = None,
    channel: str = "web",
    taken_by: str | None = None,
) -> Intake | None:
    """Check every field (collecting all problems) and build the Intake, or None."""
    text = clean_text(
        errors, "text", values.get("text"), max_length=TEXT_MAX, required=True, multiline=True
    )
    category = (values.get("category") or "").strip() or None
    if category is not None and config.category(category) is None:
        errors.add("category", N_("Unknown category."))
    company = clean_text(errors, "company", values.get("company"), max_length=200)
    name = clean_text(errors, "name", values.get("name"), max_length=100)
    phone = clean_phone(errors, "phone", values.get("phone"))
    tag = clean_tag(errors, "src", values.get("src"))
    key = clean_key(errors, "idem", values.get("idem") or idempotency_header)
    urgent = values.get("urgent", "")
    if urgent not in ("", "1", "on"):
        errors.add("urgent", N_("Tick the box or leave it empty."))
    if errors or text is None:
        return None
    return Intake(
        key=f"{channel}:{key or uuid.uuid4().hex}",
        channel=channel,
        text=text,
        received_at=received_at,
        language=language,
        category=category,
        company=company,
        name=name,
        phone=phone,
        source_tag=tag,
        urgent=urgent in ("1", "on"),
        taken_by=taken_by,
    )
