"""The console's case lists (views, filters, search) and each case's clocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hotline.service.cases import Case, normalize_code, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.store import Store
from hotline.service.store.caselists import Listing
from hotline.service.workflow import OPEN

VIEWS = ("mine", "held", "open", "overdue", "all")
LIMIT = 300


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


async def list_cases(
    store: Store, config: PointConfig, filters: Filters, member_id: str, now: datetime
) -> list[tuple[Case, Clocks]]:
    """A console list: a view (mine, held, open, overdue, all) narrowed by the filters."""
    in_work = filters.view in ("mine", "open", "overdue", "held")
    q = filters.q.strip()
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
    )
    found = [
        (case, clocks(case, config, now)) for case in await store.lists.listing(listing, LIMIT)
    ]
    if filters.view == "overdue":
        found = [(case, c) for case, c in found if c.overdue]
    return found
