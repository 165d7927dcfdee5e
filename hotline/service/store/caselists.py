"""The console's case lists: a view narrowed by filters and a text or code search, newest
first, a page at a time (keyset: each page starts below the last row of the one before, so
a case stored meanwhile never shifts a page, and none is skipped or shown twice). Filters
arrive as values, never as SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.service.cases import Case
from hotline.service.store import bigrams
from hotline.service.store.cases import case_from_row, select_cases
from hotline.service.store.database import Database, in_list
from hotline.service.store.reports import NONE, Measures, overdue_sql
from hotline.service.store.schema import OPEN_CASES
from hotline.service.workflow import OPEN

# Shorter searches have no trigram to look up. Two characters ask the index of each text's
# pairs (store/bigrams.py); one reads the cases newest first instead.
INDEXED_SEARCH = 3
# A search first reads this many of the newest cases below the page's position: a common
# word (one case in 40 or more) fills a page there at once, where the index would hand back
# every case that has it to be sorted. Finding fewer, it asks the index.
RECENT = 2_000
# On PostgreSQL a search looks the companies' names up first (cases_search_companies) and
# reads those companies' cases through cases_company; matching more names than this, it
# reads the cases' company through its trigram index instead.
NAMES = 1_000
# Up to this many names, each company's newest cases are read in order (cases_company), a
# page at most from each; more are looked up in the index at once and sorted.
WALKED_NAMES = 50


@dataclass(frozen=True)
class Listing:
    """The console's list filters, as the store applies them (values, never SQL)."""

    statuses: tuple[str, ...] = ()  # any of these; empty: all
    categories: tuple[str, ...] = ()  # any of these topics; empty: all
    assignee: str | None = None
    held_after: str | None = None  # unassigned, or held until after this UTC time
    status: str = ""
    channel: str = ""
    category: str = ""
    department: str = ""
    source: str = ""
    code: str | None = None  # search: this code...
    text: str = ""  # ...or this text in the request or the company
    overdue: str | None = None  # only cases past a deadline at this UTC time (text)
    before: tuple[str, int] | None = None  # the page below this (received_at, id)
    # The cases behind a report's figure: received in [since, until) (UTC text), of a
    # member, of a company, counted by a measure (store/reports.Measures) at these targets.
    received: tuple[str, str] | None = None
    member: str = ""
    company: str = ""
    measure: tuple[str, str] | None = None  # (measure, at this UTC time)
    reception: int | None = None  # raised at this themed reception


class CaseListRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _search(
        self,
        filters: Listing,
        params: dict[str, Any],
        scan: bool = False,
        names: list[str] | None = None,
    ) -> str:
        """The code, or the text in the request or the company: through the engine's
        full-text index from INDEXED_SEARCH characters on (unless `scan`). On PostgreSQL,
        given the `names` of the companies that match, their cases are read by name."""
        text = filters.text
        params["code"] = filters.code or ""
        params["like"] = _like(text)
        if self.db.dialect == "postgresql":
            # pg_trgm's GIN indexes serve ILIKE (case folded as the database's locale does).
            company = "c.company ILIKE :like ESCAPE '\\'"
            if names is not None:
                params["names"] = names
                company = "c.company = ANY(:names)"
            found = f"{self._pg_text(text, params, scan)} OR {company}"
        elif bigrams.indexed(text, "sqlite") and not scan:
            # Each text's pairs of letters or digits (migration 0010); the companies' names
            # (a few hundred) are read for the pair.
            params["phrase"] = '"' + text + '"'
            found = (
                "c.id IN (SELECT rowid FROM cases_search_bigrams"
                " WHERE cases_search_bigrams MATCH :phrase)"
                " OR c.company IN (SELECT n.name FROM cases_search_companies n"
                " WHERE lower(n.name) LIKE lower(:like) ESCAPE '\\')"
            )
        elif len(text) >= INDEXED_SEARCH and not scan:
            # FTS5 trigram: a phrase is the substring, case folded (not only ASCII). The
            # companies' names have an index of their own (migration 0007): the trigrams
            # every company shares (有限公司) would list every case in the text's.
            params["phrase"] = '"' + text.replace('"', '""') + '"'
            found = (
                "c.id IN (SELECT rowid FROM cases_search WHERE cases_search MATCH :phrase)"
                " OR c.company IN (SELECT n.name FROM cases_search_companies n WHERE n.id IN"
                " (SELECT rowid FROM cases_search_companies_fts"
                " WHERE cases_search_companies_fts MATCH :phrase))"
            )
        else:
            found = (
                "lower(c.text) LIKE lower(:like) ESCAPE '\\'"
                " OR lower(c.company) LIKE lower(:like) ESCAPE '\\'"
            )
        return f"(c.code = :code OR {found})"

    def indexed(self, text: str) -> bool:
        """Whether a search for `text` has an index to look it up in."""
        return len(text) >= INDEXED_SEARCH or bigrams.indexed(text, self.db.dialect)

    @staticmethod
    def _pg_text(text: str, params: dict[str, Any], scan: bool) -> str:
        """PostgreSQL: the request's text holds `text` (params' `like`); two characters are
        looked up by their pair unless `scan` (the newest cases are read instead)."""
        found = "c.text ILIKE :like ESCAPE '\\'"
        if scan or len(text) != 2:
            return found
        params["pair"] = text
        return f"{bigrams.FUNCTION}(c.text) @> ARRAY[lower(CAST(:pair AS text))] AND {found}"

    async def listing(self, filters: Listing, limit: int) -> list[Case]:
        """The console's lists: newest first, at most `limit`, below `filters.before`."""
        cased = any(not ch.isascii() and ch.lower() != ch.upper() for ch in filters.text)
        if not self.indexed(filters.text) or filters.code or cased:
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

    async def _names(self, filters: Listing, scan: bool) -> list[str] | None:
        """On PostgreSQL, the names of the companies a search matches (None: no search,
        a search that reads, or more than NAMES names)."""
        if self.db.dialect != "postgresql" or not filters.text or scan:
            return None
        rows = await self.db.fetch(
            "SELECT name FROM cases_search_companies WHERE name ILIKE :like ESCAPE '\\'"
            " LIMIT :most",
            {"like": _like(filters.text), "most": NAMES + 1},
        )
        return None if len(rows) > NAMES else [row["name"] for row in rows]

    async def count(self, filters: Listing) -> int:
        """How many cases the list holds, on every page (for a report's figure)."""
        params: dict[str, Any] = {}
        names = await self._names(filters, scan=False)
        where, _ = self._where(filters, params, scan=False, names=names)
        clause = " WHERE " + " AND ".join(where) if where else ""
        sql = f"SELECT count(*) FROM cases c{clause}"  # noqa: S608 - fragments are ours
        return int(await self.db.scalar(sql, params))

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
        params: dict[str, Any] = {}
        names = await self._names(filters, scan)
        # A shorter search has no trigram to look its text up by: one read of the newest
        # cases for either column ends at a page, where a read of the text alone could walk
        # every case for a word only companies have (嘉兴: 2 s at a million).
        union = self.db.dialect == "postgresql" and not scan
        union = union and self.indexed(filters.text)
        where, walk = self._where(filters, params, scan=scan, names=names, search=not union)
        if filters.before is not None:
            # A row value: both engines walk the (received_at, id) index from it.
            where.append("(c.received_at, c.id) < (:before_at, :before_id)")
            params |= {"before_at": filters.before[0], "before_id": filters.before[1]}
        if since is not None:
            where.append("(c.received_at, c.id) >= (:since_at, :since_id)")
            params |= {"since_at": since[0], "since_id": since[1]}
        hint = f" INDEXED BY {walk}" if walk and self.db.dialect == "sqlite" else ""
        # Every fragment of `where` is written here; values go in as parameters.
        clause = " WHERE " + " AND ".join(where) if where else ""
        order = " ORDER BY c.received_at DESC, c.id DESC"
        if union:
            found = self._union(filters, names, where, params, limit)
            sql = f"{select_cases()} WHERE c.id IN ({found}){order}"
        elif filters.text and not scan:
            # What the index finds is sorted: the ids alone, and then a page of rows is
            # read (sorting whole rows took ~10x as long: 18 ms for 1,500 found).
            found = f"SELECT c.id FROM cases c{hint}{clause}{order} LIMIT {int(limit)}"  # noqa: S608
            sql = f"{select_cases()} WHERE c.id IN ({found}){order}"
        else:
            sql = f"{select_cases(hint)}{clause}{order} LIMIT {int(limit)}"
        return [case_from_row(r) for r in await self.db.fetch(sql, params)]

    def _union(
        self,
        filters: Listing,
        names: list[str] | None,
        where: list[str],
        params: dict[str, Any],
        limit: int,
    ) -> str:
        """PostgreSQL: the ids of a page of a search's cases, newest first, from one read per
        index under the list's other conditions (`where`): the code, the text's trigrams,
        and the matching companies' own cases newest first (`cases_company`, a page from
        each), or, past WALKED_NAMES names, all at once. One bitmap OR of them all read every
        case of a company to sort them: ~5,000 rows for a page of 50 at a million cases."""
        params |= {"code": filters.code or "", "like": _like(filters.text)}

        def read(condition: str, tail: str = "") -> str:
            conditions = " AND ".join([*where, condition])
            return f"SELECT c.id, c.received_at FROM cases c WHERE {conditions}{tail}"  # noqa: S608

        newest = f" ORDER BY c.received_at DESC, c.id DESC LIMIT {int(limit)}"
        # The text is looked up in its trigrams, never walked for: a search comes here
        # when the newest cases held less than a page of it, and a phrase common once but
        # rare lately walked from the newest case back to its last one (a second at a
        # million). A company's page of newest cases needs no walk: its index is in order;
        # many companies' cases (more than WALKED_NAMES) are planned by their statistics.
        reads = [read(self._pg_text(filters.text, params, scan=False))]
        if filters.code:
            reads.append(read("c.code = :code"))
        if names is None:
            reads.append(read("c.company ILIKE :like ESCAPE '\\'", newest))
        elif len(names) <= WALKED_NAMES:
            params["names"] = names
            each = read("c.company = n.name", newest)
            reads.append(
                "SELECT w.id, w.received_at FROM unnest(CAST(:names AS text[])) AS n(name)"  # noqa: S608
                f" CROSS JOIN LATERAL ({each}) AS w"
            )
        else:
            params["names"] = names
            reads.append(read("c.company = ANY(:names)", newest))
        union = " UNION ".join(f"({r})" for r in reads)
        return (
            f"SELECT f.id FROM ({union}) AS f"  # noqa: S608 - fragments are ours
            f" ORDER BY f.received_at DESC, f.id DESC LIMIT {int(limit)}"
        )

    def _where(
        self,
        filters: Listing,
        params: dict[str, Any],
        *,
        scan: bool,
        names: list[str] | None = None,
        search: bool = True,
    ) -> tuple[list[str], str | None]:
        """The list's conditions (besides its position), and the index SQLite should walk;
        without `search`, the search is left to the caller."""
        where: list[str] = []
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
        if filters.categories:
            marks, values = in_list("topic", filters.categories)
            where.append(f"c.category IN {marks}")
            params |= values
        if filters.assignee is not None:
            where.append("c.assignee_id = :assignee")
            params["assignee"] = filters.assignee
        if filters.held_after is not None:
            where.append("(c.assignee_id IS NULL OR c.held_until > :held_after)")
            params["held_after"] = filters.held_after
        if filters.received is not None:
            where.append("c.received_at >= :received_since AND c.received_at < :received_until")
            params |= {"received_since": filters.received[0], "received_until": filters.received[1]}
            walk = "cases_received"
        # A referral figure of a department lists the cases referred to it at any time, not
        # only those whose latest referral went there.
        by_referral = (
            filters.measure is not None
            and filters.measure[0] in ("referred", *Measures.PER_REFERRAL)
            and filters.department not in (None, "", NONE)
        )
        # A rating figure of a member lists the cases with a rating credited to them, whoever
        # has the case now (a low rating hands it to the standing head).
        by_rating = (
            filters.measure is not None
            and filters.measure[0] in Measures.PER_RATING
            and filters.member != ""
        )
        for column, value in (
            ("assignee_id", "" if by_rating else filters.member),
            ("company", filters.company),
            ("status", filters.status),
            ("channel", filters.channel),
            ("category", filters.category),
            ("department_id", None if by_referral else filters.department),
            ("source_tag", filters.source),
        ):
            if value == NONE:  # a report's "not referred", "nobody yet", "no poster"...
                where.append(f"c.{column} IS NULL")
            elif value:
                where.append(f"c.{column} = :{column}")
                params[column] = value
        if filters.reception is not None:
            where.append("c.reception_id = :reception")
            params["reception"] = filters.reception
        if filters.text and search:
            where.append(self._search(filters, params, scan=scan, names=names))
        if filters.overdue is not None:
            where.append(overdue_sql(params, filters.overdue))
        if filters.measure is not None:
            name, now = filters.measure
            department = filters.department if by_referral else None
            member = filters.member if by_rating else None
            where.append(Measures(now, params).condition(name, department, member))
        return where, walk


def _like(text: str) -> str:
    """A LIKE pattern for `text` anywhere (ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
    return f"%{escaped}%"
