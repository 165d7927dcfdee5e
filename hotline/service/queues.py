"""The console's case lists: views, filters, search, and each case's clocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotline.service.cases import normalize_code, to_utc_text
from hotline.service.config import PointConfig
from hotline.service.store import Case, Store, case_from_row
from hotline.service.workflow import OPEN

VIEWS = ("mine", "held", "open", "overdue", "all")
_LIST = (
    "SELECT c.*, m.name AS assignee_name FROM cases c LEFT JOIN members m ON m.id = c.assignee_id"
)
_LIST = (
    "SELECT c.*, m.name AS assignee_name FROM cases c LEFT JOIN members m ON m.id = c.assignee_id"
)
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
    where: list[str] = []
    params: list[Any] = []
    open_list = ", ".join("?" for _ in OPEN)
    if filters.view in ("mine", "open", "overdue", "held"):
        where.append(f"c.status IN ({open_list})")
        params.extend(sorted(OPEN))
    if filters.view == "mine":
        where.append("c.assignee_id = ?")
        params.append(member_id)
    if filters.view == "held":
        where.append("(c.assignee_id IS NULL OR c.held_until > ?)")
        params.append(to_utc_text(now))
    for column, value in (
        ("c.status", filters.status),
        ("c.channel", filters.channel),
        ("c.category", filters.category),
        ("c.department_id", filters.department),
        ("c.source_tag", filters.source),
    ):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if filters.q.strip():
        code = normalize_code(filters.q)
        like = "%" + filters.q.strip().replace("%", r"\%").replace("_", r"\_") + "%"
        where.append("(c.code = ? OR c.text LIKE ? ESCAPE '\\' OR c.company LIKE ? ESCAPE '\\')")
        params.extend([code or "", like, like])
    # Every fragment of `where` is written in this function; values go in as parameters.
    clause = " WHERE " + " AND ".join(where) if where else ""
    sql = _LIST + clause + f" ORDER BY c.received_at DESC LIMIT {LIMIT}"
    rows = await store.fetch(sql, tuple(params))
    found = [(case, clocks(case, config, now)) for case in map(case_from_row, rows)]
    if filters.view == "overdue":
        found = [(case, c) for case, c in found if c.overdue]
    return found
