"""The JSON API's request to make a case (`POST /api/v1/cases`): its fields, their types and
limits (the web form's, through `webform.parse_submission`), and the Intake it makes."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from hotline.channels.fields import FieldErrors
from hotline.channels.webform import parse_submission
from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.i18n import LANGUAGES, N_

TEXTS = ("text", "category", "company", "name", "phone", "source")
FIELDS = (*TEXTS, "urgent", "language")


def parse_case(
    body: Any,
    errors: FieldErrors,
    config: PointConfig,
    *,
    received_at: datetime,
    token_id: int,
    idempotency_key: str | None,
) -> Intake | None:
    """A JSON object's fields checked (every problem collected) into an Intake of channel
    `api`; the Idempotency-Key is the partner's own (scoped to its token), so a retry with
    the same key gets the same code."""
    if not isinstance(body, dict):
        errors.add("body", N_("A JSON object is expected."))
        return None
    for name in body:
        if name not in FIELDS:
            errors.add(str(name)[:64], N_("Not a field of this request."))
    values: dict[str, str] = {}
    for name in TEXTS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            errors.add(name, N_("A string is expected."))
        elif value is not None:
            values["src" if name == "source" else name] = value
    urgent = body.get("urgent", False)
    if not isinstance(urgent, bool):
        errors.add("urgent", N_("true or false is expected."))
    elif urgent:
        values["urgent"] = "1"
    language = body.get("language", config.point.language)
    if language not in LANGUAGES:
        errors.add("language", N_("zh-CN or en."))
    intake = parse_submission(
        values, errors, config, received_at=received_at,
        language=language if language in LANGUAGES else config.point.language,
        idempotency_header=idempotency_key, channel="api",
    )  # fmt: skip
    if intake is None or errors:
        # The form's names for two of them: here a field and a header.
        for form_name, name in (("src", "source"), ("idem", "Idempotency-Key")):
            if form_name in errors.errors:
                errors.errors[name] = errors.errors.pop(form_name)
        return None
    if idempotency_key:
        intake = dataclasses.replace(intake, key=f"api:{token_id}:{idempotency_key}")
    return intake
