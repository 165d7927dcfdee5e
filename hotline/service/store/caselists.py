"""The console's case lists: a view narrowed by filters and a text or code search, newest
first, a page at a time (keyset: each page starts below the last row of the one before, so
a case stored meanwhile never shifts a page, and none is skipped or shown twice). Filters
arrive as values, never as SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.service.cases import Case
from hotline.service.store.cases import case_from_row, select_cases
from hotline.service.store.database import Database, in_list
from hotline.service.store.schema import OPEN_CASES
from hotline.service.workflow import OPEN

# Shorter searches have no trigram to look up: they read the cases newest first instead.
INDEXED_SEARCH = 3
# A search first reads this many of the newest cases below the page's position: a common
# word (one case in 40 or more) fills a page there at once, where the index would hand back
# every case that has it to be sorted. Finding fewer, it asks the index.
RECENT = 2_000


@dataclass(frozen=True)
class Overdue:
    """Past a deadline at `now`, as cutoffs (UTC text: a clock that started before its cutoff
    has run out): per category code, and the point's defaults for any other category."""

    now: str
    respond: dict[str, str]
    resolve: dict[str, str]
    respond_default: str
    resolve_default: str


@dataclass(frozen=True)
class Listing:
    """The console's list filters, as the store applies them (values, never SQL)."""

    statuses: tuple[str, ...] = ()  # any of these; empty: all
    assignee: str | None = None
    held_after: str | None = None  # unassigned, or held until after this UTC time
    status: str = ""
    channel: str = ""
    category: str = ""
    department: str = ""
    source: str = ""
    code: str | None = None  # search: this code...
    text: str = ""  # ...or this text in the request or the company
    overdue: Overdue | None = None  # only cases past a deadline
    before: tuple[str, int] | None = None  # the page below this (received_at, id)


def _cutoff(name: str, by_category: dict[str, str], default: str, params: dict[str, Any]) -> str:
    """SQL for the cutoff of a case's category (a CASE over the point's categories)."""
    params[f"{name}_default"] = default
    if not by_category:
        return f":{name}_default"
    whens = []
    for n, (category, cutoff) in enumerate(sorted(by_category.items())):
        params[f"{name}_cat{n}"] = category
        params[f"{name}_cut{n}"] = cutoff
        whens.append(f"WHEN :{name}_cat{n} THEN :{name}_cut{n}")
    return f"CASE c.category {' '.join(whens)} ELSE :{name}_default END"


def _overdue(overdue: Overdue, params: dict[str, Any]) -> str:
    """What service/caselists.clocks says of an open case, in SQL: its clocks start at receipt
    or when a hold ends; a response is due unless one was made; a referral has its own."""
    start = (
        "(CASE WHEN c.held_until IS NOT NULL AND c.held_until > c.received_at"
        " THEN c.held_until ELSE c.received_at END)"
    )
    respond = _cutoff("respond", overdue.respond, overdue.respond_default, params)
    resolve = _cutoff("resolve", overdue.resolve, overdue.resolve_default, params)
    params["overdue_now"] = overdue.now
    return (
        f"((c.first_response_at IS NULL AND {start} < {respond}) OR {start} < {resolve}"
        " OR (c.status = 'referred' AND c.referral_due < :overdue_now))"
    )


class CaseListRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _search(self, filters: Listing, params: dict[str, Any], scan: bool = False) -> str:
        """The code, or the text in the request or the company: through the engine's
        full-text index from INDEXED_SEARCH characters on (unless `scan`)."""
        text = filters.text
        params["code"] = filters.code or ""
        escaped = text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        params["like"] = f"%{escaped}%"
        if self.db.dialect == "postgresql":
            # pg_trgm's GIN indexes serve ILIKE (case folded as the database's locale does).
            found = "c.text ILIKE :like ESCAPE '\\' OR c.company ILIKE :like ESCAPE '\\'"
        elif len(text) >= INDEXED_SEARCH and not scan:
            # FTS5 trigram: a phrase is the substring, case folded (not only ASCII).
            params["phrase"] = '"' + text.replace('"', '""') + '"'
            found = "c.id IN (SELECT rowid FROM cases_search WHERE cases_search MATCH :phrase)"
        else:
            found = (
                "lower(c.text) LIKE lower(:like) ESCAPE '\\'"
                " OR lower(c.company) LIKE lower(:like) ESCAPE '\\'"
            )
        return f"(c.code = :code OR {found})"

    async def listing(self, filters: Listing, limit: int) -> list[Case]:
        """The console's lists: newest first, at most `limit`, below `filters.before`."""
        cased = any(not ch.isascii() and ch.lower() != ch.upper() for ch in filters.text)
        if len(filters.text) < INDEXED_SEARCH or filters.code or cased:
            # A code is looked up, not read for. Letters with case beyond ASCII (Cyrillic,
            # accented Latin) go to the index alone: reading the text folds ASCII only,
            # the index folds them too, and a page must not depend on which one found it.
            return await self.page(filters, limit)
        since = await self.recent_floor(filters.before)
        if since is None:  # fewer than RECENT cases below the position: read them all
            return await self.page(filters, limit, scan=True)
        recent = await self.page(filters, limit, scan=True, since=since)
        if len(recent) == limit:
            return recent  # a full page among the newest: nothing older comes before it
        return await self.page(filters, limit)

    async def recent_floor(self, before: tuple[str, int] | None) -> tuple[str, int] | None:
        """The position of the RECENT-th newest case below `before` (None: fewer)."""
        below = ""
        params: dict[str, Any] = {"recent": RECENT}
        if before is not None:
            below = " WHERE (c.received_at, c.id) < (:at, :id)"
            params |= {"at": before[0], "id": before[1]}
        floor = await self.db.fetch_one(
            f"SELECT c.received_at, c.id FROM cases c{below}"  # noqa: S608 - ours
            " ORDER BY c.received_at DESC, c.id DESC LIMIT 1 OFFSET :recent",
            params,
        )
        return None if floor is None else (floor["received_at"], int(floor["id"]))

    async def page(
        self,
        filters: Listing,
        limit: int,
        *,
        scan: bool = False,
        since: tuple[str, int] | None = None,
    ) -> list[Case]:
        """One page. With `scan`, a search reads the text of the cases in order instead of
        asking the index; with `since`, only cases from that position up are read."""
        where: list[str] = []
        params: dict[str, Any] = {}
        walk = "cases_received" if scan else None
        if set(filters.statuses) == OPEN:
            where.append("c." + OPEN_CASES)  # as the partial index cases_open says it
            if not filters.text or scan:
                # Without statistics SQLite sorts every open case by the status index;
                # walking the open cases newest first reads one page.
                walk = "cases_open"
        elif filters.statuses:
            marks, values = in_list("status", filters.statuses)
            where.append(f"c.status IN {marks}")
            params |= values
        if filters.assignee is not None:
            where.append("c.assignee_id = :assignee")
            params["assignee"] = filters.assignee
        if filters.held_after is not None:
            where.append("(c.assignee_id IS NULL OR c.held_until > :held_after)")
            params["held_after"] = filters.held_after
        for column, value in (
            ("status", filters.status),
            ("channel", filters.channel),
            ("category", filters.category),
            ("department_id", filters.department),
            ("source_tag", filters.source),
        ):
            if value:
                where.append(f"c.{column} = :{column}")
                params[column] = value
        if filters.text:
            where.append(self._search(filters, params, scan=scan))
        if filters.overdue is not None:
            where.append(_overdue(filters.overdue, params))
        if filters.before is not None:
            # A row value: both engines walk the (received_at, id) index from it.
            where.append("(c.received_at, c.id) < (:before_at, :before_id)")
            params |= {"before_at": filters.before[0], "before_id": filters.before[1]}
        if since is not None:
            where.append("(c.received_at, c.id) >= (:since_at, :since_id)")
            params |= {"since_at": since[0], "since_id": since[1]}
        hint = f" INDEXED BY {walk}" if walk and self.db.dialect == "sqlite" else ""
        select = select_cases(hint)
        # Every fragment of `where` is written here; values go in as parameters.
        clause = " WHERE " + " AND ".join(where) if where else ""
        order = " ORDER BY c.received_at DESC, c.id DESC"
        sql = f"{select}{clause}{order} LIMIT {int(limit)}"
        return [case_from_row(r) for r in await self.db.fetch(sql, params)]
