"""The console's case lists (views, filters, search) and each case's clocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import Case, from_utc_text, normalize_code, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.store import Store
from hotline.service.store.caselists import Listing, Overdue
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


def clocks(case: Case, config: PointConfig, now: datetime) -> Clocks:
    respond, resolve = config.targets_for(case.category)
    start = max(case.received_at, case.held_until or case.received_at)
    is_open = case.status in OPEN
    return Clocks(
        respond_due=start + respond if is_open and case.first_response_at is None else None,
        resolve_due=start + resolve if is_open else None,
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


def overdue_at(config: PointConfig, now: datetime) -> Overdue:
    """The cutoffs of `clocks` at `now`, for the store to find overdue cases by."""
    respond, resolve = config.targets_for(None)
    by_category = {c.code: config.targets_for(c.code) for c in config.categories}
    return Overdue(
        now=to_utc_text(now),
        respond={code: to_utc_text(now - r) for code, (r, _) in by_category.items()},
        resolve={code: to_utc_text(now - r) for code, (_, r) in by_category.items()},
        respond_default=to_utc_text(now - respond),
        resolve_default=to_utc_text(now - resolve),
    )


async def list_cases(
    store: Store, config: PointConfig, filters: Filters, member_id: str, now: datetime
) -> Page:
    """A page of a console list: a view (mine, held, open, overdue, all) narrowed by the
    filters, newest first, below `filters.before`. BadPosition for a position never given."""
    in_work = filters.view in ("mine", "open", "overdue", "held")
    q = filters.q.strip()
    before = parse_position(filters.before) if filters.before else None
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
        overdue=overdue_at(config, now) if filters.view == "overdue" else None,
        before=before,
    )
    found = await store.lists.listing(listing, PAGE)
    older = page_position(found[-1]) if len(found) == PAGE else None
    return Page([(case, clocks(case, config, now)) for case in found], older)
