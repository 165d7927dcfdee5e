"""What the public may see of a request by its code (/track, and later the API and Open311):
status, dates, who handles it, the point's replies — never the submitter's name, phone or
text. A code accepted but not stored yet shows as received, being registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hotline.service.cases import Case, Event, Message, Status, from_utc_text, normalize_code
from hotline.service.ports import IntakeSink
from hotline.service.store import Store
from hotline.service.workflow import PUBLIC_EVENTS


@dataclass(frozen=True)
class Tracked:
    code: str
    status: str
    channel: str | None
    received_at: datetime
    updated_at: datetime
    assignee: tuple[str, str | None] | None  # (id, name)
    timeline: list[tuple[datetime, str]]  # (when, status): the status changes only
    replies: list[Message] = field(default_factory=list)
    case: Case | None = None  # None while it is being registered
    # The departments' answers the point marked public: (when, department name id, text).
    answers: list[tuple[datetime, str | None, str]] = field(default_factory=list)
    reason: str | None = None  # why it was withdrawn or rejected (the submitter was told)

    @property
    def registering(self) -> bool:
        return self.case is None


@dataclass(frozen=True)
class Moved:
    """A spooled code that became another case's code: look there."""

    code: str


async def track(store: Store, intake: IntakeSink, typed: str) -> Tracked | Moved | None:
    code = normalize_code(typed)
    if code is None:
        return None
    found = await _stored(store, code)
    if found is not None:
        return found
    alias = await intake.alias_of(code)
    if alias:
        return Moved(alias)
    received = await intake.received_at(code)
    if received is None:
        # The router stores a case, then points an older code at it and drops the code
        # from the unrouted ones: a lookup between our reads finds one or the other now.
        alias = await intake.alias_of(code)
        return Moved(alias) if alias else await _stored(store, code)
    at = from_utc_text(received)
    return Tracked(code, Status.RECEIVED, None, at, at, None, [(at, Status.RECEIVED)])


async def issued_at(store: Store, intake: IntakeSink, code: str) -> datetime | None:
    """When case code `code` was issued: not routed yet (Redis, the spool) or stored."""
    received = await intake.received_at(code)
    if received is not None:
        return from_utc_text(received)
    case = await store.cases.by_code(code)
    return case.received_at if case is not None else None


async def _stored(store: Store, code: str) -> Tracked | None:
    case = await store.cases.by_code(code)
    if case is not None:
        events = await store.cases.events(case.id)
        messages = await store.cases.messages(case.id)
        return Tracked(
            code=case.code,
            status=case.status,
            channel=case.channel,
            received_at=case.received_at,
            # What the submitter may see changed last: an internal note moves nothing here
            # (a case loaded without its log has only its own time to go by).
            updated_at=max(
                (e.at for e in events if e.kind in PUBLIC_EVENTS), default=case.updated_at
            ),
            assignee=(case.assignee_id, case.assignee_name) if case.assignee_id else None,
            timeline=[(e.at, e.status) for e in status_changes(events)],
            replies=[m for m in messages if is_public_reply(m)],
            case=case,
            answers=public_answers(events, case),
            reason=ended_why(events, case),
        )
    return None


def is_public_reply(message: Message) -> bool:
    """A reply the point gave on the public page: to a submitter who left no number, or one
    whose text never reached them (they opted out, it failed, no SMS provider), so that the
    page is where they find it. One texted to them was written for them alone (the console
    says so) and stays off. (The store works it out: Message.public.)"""
    return message.direction == "out" and message.public


def ended_why(events: list[Event], case: Case) -> str | None:
    """The reason given when the request was withdrawn or rejected, while it stays so: one
    given to be told (a reason recorded before the submitter was told them is internal)."""
    if case.status not in (Status.WITHDRAWN, Status.REJECTED):
        return None
    ended = [e for e in events if e.kind in ("withdraw", "reject") and e.detail.get("public")]
    if not ended:
        return None
    return str(ended[-1].detail.get("text") or "") or None


def public_answers(events: list[Event], case: Case) -> list[tuple[datetime, str | None, str]]:
    """The departments' answers recorded as public, each with the department it came from
    (the referral before it)."""
    answers = []
    department = case.department_id
    for event in events:
        if event.kind == "refer":
            department = event.detail.get("department", department)
        elif event.kind == "answer" and event.detail.get("public") and event.detail.get("text"):
            answers.append((event.at, department, str(event.detail["text"])))
    return answers


def status_changes(events: list[Event]) -> list[Event]:
    """The public timeline: only the events that changed the status (no notes, no detail),
    and a referral on to another department (the submitter was texted that it moved)."""
    shown: list[Event] = []
    department = None
    for event in events:
        moved_on = event.kind == "refer" and event.detail.get("department") != department
        if event.kind == "refer":
            department = event.detail.get("department")
        if not shown or event.status != shown[-1].status or moved_on:
            shown.append(event)
    return shown
