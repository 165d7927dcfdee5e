"""The JSON API's wire format (`/api/v1`): one pydantic model per body, query and answer.

The handlers validate with these models and answer through them, and the OpenAPI document
(`channels/openapi.py`) is generated from them: what the spec says is what is checked. Rules
about cases (a category exists, a phone number is one, what an action may do) stay in the
web form's checks and in `service`, shared with every other channel."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from hotline.channels.fields import FieldErrors, is_number
from hotline.channels.webform import TEXT_MAX, parse_submission
from hotline.service.cases import CHANNELS, Case, Intake, ReferralState, Status, to_utc_text
from hotline.service.casework import TEXT_MAX as ACTION_TEXT_MAX
from hotline.service.config import PointConfig
from hotline.service.i18n import LANGUAGES, N_
from hotline.service.periods import PRESETS
from hotline.service.workflow import MEMBER_ACTIONS

LIMIT_MAX = 500

Time = Annotated[
    datetime,
    PlainSerializer(to_utc_text, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
if TYPE_CHECKING:  # the values are the service's: strings to the type checker
    StatusName: TypeAlias = str
    ChannelName: TypeAlias = str
    ActionName: TypeAlias = str
    Language: TypeAlias = str
    PeriodName: TypeAlias = str
else:
    StatusName = Literal[tuple(s.value for s in Status)]
    ChannelName = Literal[CHANNELS]
    ActionName = Literal[tuple(a.value for a in MEMBER_ACTIONS)]
    Language = Literal[tuple(LANGUAGES)]
    PeriodName = Literal[tuple(PRESETS)]
IDEMPOTENCY_KEY = r"^[A-Za-z0-9_-]{16,64}$"
DATE: dict[str, Any] = {"format": "date"}  # a local date, YYYY-MM-DD
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def local_date(description: str | None = None, alias: str | None = None) -> Any:
    """An optional query parameter that is one of the point's local dates (YYYY-MM-DD)."""
    return Field(
        None, alias=alias, description=description, max_length=10, pattern=DATE_PATTERN,
        json_schema_extra=DATE,
    )  # fmt: skip


class _In(BaseModel):
    """What a client sends: strict types (a number is no string), no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _digits(value: Any) -> Any:
    """A number in a query string as the pages read one: ASCII digits alone. Pydantic's lax
    mode would also take " 12 ", "+12", "12.0" and "1_2"."""
    if isinstance(value, str) and not is_number(value):
        raise PydanticCustomError("int_parsing", "not a whole number in digits")
    return value


QueryNumber = Annotated[int, BeforeValidator(_digits)]


class _Query(BaseModel):
    """A query string: every value arrives as text; numbers are read from it."""

    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ---------------------------------------------------------------------------


class NewCase(_In):
    """A request from a partner: what the web form takes, as JSON."""

    text: str = Field(min_length=1, max_length=TEXT_MAX, description="What the business asks.")
    category: str | None = Field(None, max_length=64, description="A category code of the point.")
    company: str | None = Field(None, max_length=200)
    name: str | None = Field(None, max_length=100, description="The submitter's name.")
    phone: str | None = Field(None, max_length=32, description="For SMS replies, e.g. +86...")
    source: str | None = Field(None, max_length=64, description="Which poster or partner.")
    urgent: bool = False
    language: Language | None = Field(None, description="The submitter's; the point's if unset.")


class CaseAction(_In):
    """One of the console's actions; which fields it needs depends on the action."""

    action: ActionName
    text: str | None = Field(
        None, max_length=ACTION_TEXT_MAX, description="Reply, note, outcome, reason, answer."
    )
    department: str | None = Field(None, max_length=64, description="For refer: department id.")
    due: str | None = Field(None, max_length=20, description="For refer: local date YYYY-MM-DD.")
    member: str | None = Field(None, max_length=64, description="For reassign: member id.")
    seen_status: StatusName | None = Field(
        None, description="The status the client saw: 409 if the case has moved on since."
    )
    seen_assignee: str | None = Field(
        None, max_length=64,
        description='The assignee the client saw ("" for none): 409 if the case was'
        " reassigned since.",
    )  # fmt: skip
    public: bool = Field(
        False, description="For answer: the submitter may read it on the status page."
    )


RECEPTION_MAX = 10**12 - 1  # an id of at most 12 digits, as the pages take it


class CaseQuery(_Query):
    """Filters of the case list (the console's), newest first."""

    status: StatusName | None = None
    channel: ChannelName | None = None
    category: str | None = Field(None, max_length=64)
    department: str | None = Field(None, max_length=64)
    assignee: str | None = Field(None, max_length=64, description="Member id.")
    source: str | None = Field(None, max_length=64)
    since: str | None = local_date("Received on or after (local).")
    until: str | None = local_date("Received on or before (local).")
    q: str | None = Field(None, max_length=100, description="Code, text or company.")
    reception: QueryNumber | None = Field(
        None, ge=1, le=RECEPTION_MAX, description="Raised at this themed reception (its id)."
    )
    limit: QueryNumber = Field(50, ge=1, le=LIMIT_MAX)
    cursor: str | None = Field(None, max_length=200, description="`next` of the page before.")


class DutyQuery(_Query):
    from_: str | None = local_date(alias="from")
    to: str | None = local_date()


class ReportQuery(DutyQuery):
    period: PeriodName | None = Field(None, description="A preset, when `from`/`to` are not given.")
    reception: QueryNumber | None = Field(
        None, ge=1, le=RECEPTION_MAX,
        description="Count only the requests raised at this themed reception (its id).",
    )  # fmt: skip


# -- answers ----------------------------------------------------------------------------


class Errors(_Out):
    """Every 4xx: field (or header, or `body`, or `authorization`) -> what is wrong."""

    errors: dict[str, str]


class Created(_Out):
    code: str
    status_url: str = Field(description="The public status page the submitter can follow.")


class CaseOut(_Out):
    """A case as the console lists it; never the submitter's name or phone."""

    code: str
    status: StatusName
    channel: str
    received_at: Time
    category: str | None
    department: str | None
    assignee: str | None
    source: str | None
    company: str | None
    text: str
    language: str
    urgent: bool
    presidium: bool
    first_response_at: Time | None
    first_response_due: Time | None
    resolved_at: Time | None
    resolution_due: Time | None
    referral_due: Time | None
    rating: int | None
    reopens: int
    closed_at: Time | None
    updated_at: Time
    reception: int | None = Field(description="The themed reception it was raised at.")

    @classmethod
    def of(cls, case: Case) -> CaseOut:
        return cls(
            code=case.code, status=case.status, channel=case.channel,
            received_at=case.received_at, category=case.category,
            department=case.department_id, assignee=case.assignee_id, source=case.source_tag,
            company=case.company, text=case.text, language=case.language, urgent=case.urgent,
            presidium=case.presidium, first_response_at=case.first_response_at,
            first_response_due=case.first_response_due, resolved_at=case.resolved_at,
            resolution_due=case.resolution_due, referral_due=case.referral_due,
            rating=case.rating, reopens=case.reopens, closed_at=case.closed_at,
            updated_at=case.updated_at, reception=case.reception_id,
        )  # fmt: skip


class CasePage(_Out):
    items: list[CaseOut]
    next: str | None = Field(description="Cursor of the following page; null on the last.")


class EventOut(_Out):
    at: Time
    kind: str
    status: str
    actor: str | None
    detail: dict[str, Any]


class MessageOut(_Out):
    at: Time
    direction: str = Field(json_schema_extra={"enum": ["in", "out"]})
    channel: str
    body: str


class ReferralOut(_Out):
    department: str
    referred_at: Time
    due: Time
    answered_at: Time | None = Field(description="The department's answer (or the outcome).")
    ended_at: Time | None = Field(description="Taken back unanswered (referred again...).")
    state: ReferralState


class CaseDetail(CaseOut):
    events: list[EventOut]
    messages: list[MessageOut]
    referrals: list[ReferralOut] = Field(description="Every referral (交办), oldest first.")


class ShiftOut(_Out):
    member: str
    name: str
    start: Time
    end: Time
    source: Literal["rotation", "override", "standing-in"]


class DutyOut(_Out):
    from_: str = Field(alias="from")
    to: str
    shifts: list[ShiftOut]


class Rate(_Out):
    numerator: int
    denominator: int
    percent: float | None = Field(description="One decimal; null when the denominator is 0.")


class Rates(_Out):
    response: Rate
    resolution: Rate
    satisfaction: Rate
    referral_on_time: Rate


class Medians(_Out):
    first_response: float | None
    resolution: float | None


class Group(_Out):
    key: str | None
    received: int
    # As the console's per-member table has them, for every dimension but `company`.
    response: Rate | None = Field(
        None, description="The response rate of the group's requests; null for `company`."
    )
    resolution: Rate | None = Field(None, description="The resolution rate; null for `company`.")
    satisfaction: Rate | None = Field(
        None,
        description="Ratings of 4 or 5 of those given; per member, each rating counts for the"
        " member rated. Null for `company`.",
    )


class DepartmentReferrals(_Out):
    key: str = Field(description="The department's id.")
    referrals: int = Field(description="Referrals to it of the period's requests, every one.")
    on_time: Rate = Field(description="Answered by the due date, of those answered or past it.")
    past_due: int = Field(description="Still waiting on it past the due date.")


class Bucket(_Out):
    first: str
    last: str
    received: int
    by_channel: dict[str, int]


class ReportOut(_Out):
    from_: str = Field(alias="from")
    to: str
    counts: dict[str, int]
    rates: Rates
    median_seconds: Medians
    by: dict[str, list[Group]] = Field(
        description="Received per key of each dimension, most first; `company` lists the 15"
        " companies with most requests, the rest summed in `other_companies`, then those"
        " naming none (key null)."
    )
    other_companies: int = Field(description="Requests of the companies past the top 15.")
    referrals: list[DepartmentReferrals] = Field(
        description="Per department, every referral of the period's requests (a request"
        " referred to one department and then another counts for both)."
    )
    series: list[Bucket] = Field(description="Received per day, week or month.")


# -- from the wire ----------------------------------------------------------------------

# pydantic's error kinds, in the words the rest of the service uses (translated on output).
_MESSAGES = {
    "missing": N_("This field is required."),
    "extra_forbidden": N_("Not a field of this request."),
    "string_type": N_("A string is expected."),
    "bool_type": N_("true or false is expected."),
    "int_type": N_("A whole number is expected."),
    "int_parsing": N_("A whole number is expected."),
    "string_too_short": N_("This field is required."),
    "string_too_long": N_("Too long: at most %(max)d characters (this has %(length)d)."),
    "literal_error": N_("Not one of the values this field takes."),
    "greater_than_equal": N_("Too small."),
    "less_than_equal": N_("Too large."),
    "model_type": N_("A JSON object is expected."),
    "string_pattern_mismatch": N_("Not in the form this field takes."),
    "model_attributes_type": N_("A JSON object is expected."),
}


def field_errors(exc: ValidationError, errors: FieldErrors) -> None:
    """A model's refusal as field -> message (the first problem of each field)."""
    for problem in exc.errors(include_url=False, include_input=True):
        loc = problem["loc"]
        name = str(loc[0])[:64] if loc else "body"
        kind = problem["type"]
        message = _MESSAGES.get(kind, N_("Not a valid value."))
        if kind == "string_too_long":
            value = problem.get("input")
            length = len(value) if isinstance(value, str) else 0
            errors.add(name, message, max=problem["ctx"]["max_length"], length=length)
        else:
            errors.add(name, message)


def parse_case(
    body: NewCase,
    errors: FieldErrors,
    config: PointConfig,
    *,
    received_at: datetime,
    token_id: int,
    idempotency_key: str | None,
) -> Intake | None:
    """A validated body checked by the web form's rules (every problem collected) into an
    Intake of channel `api`; the Idempotency-Key is the partner's own (scoped to its token),
    so a retry with the same key gets the same code."""
    values = {
        ("src" if name == "source" else name): value
        for name in ("text", "category", "company", "name", "phone", "source")
        if (value := getattr(body, name)) is not None
    }
    if body.urgent:
        values["urgent"] = "1"
    if idempotency_key is not None and not re.fullmatch(IDEMPOTENCY_KEY, idempotency_key):
        errors.add("idem", N_("Not a valid idempotency key (16 to 64 letters, digits, - or _)."))
    intake = parse_submission(
        values, errors, config, received_at=received_at,
        language=body.language or config.point.language,
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
