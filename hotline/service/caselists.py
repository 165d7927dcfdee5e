"""The console's case lists (views, filters, search) and each case's clocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import Case, from_utc_text, normalize_code, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.i18n import N_, Refusal
from hotline.service.periods import received_between
from hotline.service.receptions import reception_id
from hotline.service.store import Store
from hotline.service.store.caselists import Listing
from hotline.service.store.reports import Measures
from hotline.service.workflow import OPEN

VIEWS = ("mine", "held", "open", "overdue", "all")
PAGE = 50  # cases per page; the next page starts below the last one shown


class BadPosition(ValueError):
    """A page position that this list never handed out."""


def page_position(case: Case) -> str:
    """Where the page after `case` starts: its receipt time and id (the list's order)."""
    return f"{to_utc_text(case.received_at)}~{case.id}"


def parse_position(text: str) -> tuple[str, int]:
    """A `page_position` back as (received_at text, id); BadPosition otherwise."""
    at, _, case_id = text.partition("~")
    try:
        if to_utc_text(from_utc_text(at)) != at or not case_id.isdigit() or len(case_id) > 18:
            raise ValueError(text)  # (an id of 19 digits or more passes what a row id can be)
        return at, int(case_id)
    except (ValueError, OverflowError):
        raise BadPosition(text) from None


@dataclass(frozen=True)
class Page:
    rows: list[tuple[Case, Clocks]]
    older: str | None  # the position of the next (older) page; None on the last page
    total: int | None = None  # on every page: counted for a report's figure only


class BadFilter(Refusal):
    """A list filter that cannot be applied: `field` names it."""


@dataclass(frozen=True)
class Clocks:
    """The point's own clocks (from receipt, or from when a held request is taken up) and a
    referral's separate clock; None where a clock has stopped."""

    respond_due: datetime | None
    resolve_due: datetime | None
    referral_due: datetime | None
    now: datetime

    @property
    def overdue(self) -> list[str]:
        late = {
            "respond": self.respond_due,
            "resolve": self.resolve_due,
            "referral": self.referral_due,
        }
        return [name for name, due in late.items() if due is not None and due < self.now]


def due_times(
    config: PointConfig, category: str | None, received_at: datetime, held_until: datetime | None
) -> tuple[datetime, datetime]:
    """(first response due, resolution due) of a case: its category's targets (or the
    point's), counted from receipt, or from when a request held for the next shift is taken
    up. Stored with the case: it keeps the targets in force when it came in."""
    respond, resolve = config.targets_for(category)
    start = max(received_at, held_until or received_at)
    return start + respond, start + resolve


def clocks(case: Case, config: PointConfig, now: datetime) -> Clocks:
    if case.first_response_due and case.resolution_due:
        respond, resolve = case.first_response_due, case.resolution_due
    else:  # stored before its due times were filled in (fill_due_times does it)
        respond, resolve = due_times(config, case.category, case.received_at, case.held_until)
    is_open = case.status in OPEN
    return Clocks(
        respond_due=respond if is_open and case.first_response_at is None else None,
        resolve_due=resolve if is_open else None,
        referral_due=case.referral_due if case.status == "referred" else None,
        now=now,
    )


@dataclass(frozen=True)
class Filters:
    view: str = "open"
    status: str = ""
    channel: str = ""
    category: str = ""
    department: str = ""
    source: str = ""
    q: str = ""
    before: str = ""  # a page_position: the page below it
    # A report's figure: received from..to (local dates), a member's, a company's, and
    # counted by a measure (store/reports.Measures.NAMES).
    since: str = ""
    until: str = ""
    member: str = ""
    company: str = ""
    measure: str = ""
    reception: str = ""  # requests raised at this themed reception (its id)

    @property
    def of_report(self) -> bool:
        return bool(self.since or self.until or self.measure or self.reception)


async def fill_due_times(store: Store, config: PointConfig) -> int:
    """Give every case stored without its due times (before they were stored, or by an
    older worker) the ones `due_times` says; returns how many. Cheap when there are none."""
    filled = 0
    while rows := await store.cases.without_due_times(1000):
        await store.cases.set_due_times(
            [
                (row.id, *due_times(config, row.category, row.received_at, row.held_until))
                for row in rows
            ]
        )
        filled += len(rows)
    return filled


async def cases_received(
    store: Store,
    *,
    since: datetime,
    until: datetime,
    statuses: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    limit: int,
) -> list[Case]:
    """Cases received in [since, until), newest first, of these statuses and these
    categories (empty: any): Open311's GET requests."""
    listing = Listing(
        statuses=tuple(sorted(statuses)),
        categories=tuple(sorted(set(categories))),
        received=(to_utc_text(since), to_utc_text(until)),
    )
    return await store.lists.listing(listing, limit)


async def list_cases(
    store: Store,
    config: PointConfig,
    filters: Filters,
    member_id: str,
    now: datetime,
    *,
    limit: int = PAGE,
    counted: bool = True,
) -> Page:
    """A page of a console list (or of the API's): a view (mine, held, open, overdue, all)
    narrowed by the filters, newest first, `limit` cases below `filters.before`.
    BadPosition for a position never given. A report's list (from, to or a measure) is
    counted too, unless not `counted` (the API pages without a total)."""
    in_work = filters.view in ("mine", "open", "overdue", "held")
    q = filters.q.strip()
    before = parse_position(filters.before) if filters.before else None
    received = None
    if filters.since or filters.until:
        received = received_between(filters.since, filters.until, config.point.timezone)
    measure = None
    if filters.measure:
        if filters.measure not in Measures.NAMES:
            raise BadFilter("measure", N_("not one of the reports' figures"))
        measure = (filters.measure, to_utc_text(now))
    reception = None
    if filters.reception:
        reception = reception_id(filters.reception)
        if reception is None or await store.receptions.get(reception) is None:
            raise BadFilter("reception", N_("no such reception"))
    listing = Listing(
        statuses=tuple(sorted(OPEN)) if in_work else (),
        assignee=member_id if filters.view == "mine" else None,
        held_after=to_utc_text(now) if filters.view == "held" else None,
        status=filters.status,
        channel=filters.channel,
        category=filters.category,
        department=filters.department,
        source=filters.source,
        code=normalize_code(q) if q else None,
        text=q,
        overdue=to_utc_text(now) if filters.view == "overdue" else None,
        before=before,
        received=received,
        member=filters.member,
        company=filters.company,
        measure=measure,
        reception=reception,
    )
    # One row more than the page: a next page is offered only when there is one.
    found = await store.lists.listing(listing, limit + 1)
    older = page_position(found[limit - 1]) if len(found) > limit else None
    found = found[:limit]
    total = await store.lists.count(listing) if filters.of_report and counted else None
    return Page([(case, clocks(case, config, now)) for case in found], older, total)
