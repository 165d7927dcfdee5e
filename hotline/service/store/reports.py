"""The reports' figures, counted by the database: each figure is a named condition on a case
(`Measures`), summed over the cases received in a period, grouped by the dimensions the
reports show. The console's case lists filter by the same conditions, so a figure and the
list behind it cannot disagree — except that a per-referral figure counts referrals, and a
per-rating one ratings, and their lists show the cases that had them (one case referred or
rated twice counts twice, is listed once). Only grouped counts come back, never the cases
themselves."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hotline.service.store.database import Conn, Database, Row
from hotline.service.store.schema import OPEN_CASES

# Cases withdrawn by the submitter, or rejected as spam or out of scope: a figure of their
# own. In the rates they count as they stood when they were withdrawn or rejected: their
# clocks stop then (spam rejected within its target counts nowhere; a request left past its
# target before it was withdrawn counts as late, as it was).
NOT_COUNTED = "c.status IN ('withdrawn', 'rejected')"
STOPPED = f"(CASE WHEN {NOT_COUNTED} THEN coalesce(c.closed_at, c.updated_at) ELSE :now END)"
# A clock starts at receipt, or when a request held for the next shift is taken up.
START = (
    "(CASE WHEN c.held_until IS NOT NULL AND c.held_until > c.received_at"
    " THEN c.held_until ELSE c.received_at END)"
)


def overdue_sql(params: dict[str, Any], now: str, name: str = "overdue_now") -> str:
    """What service/caselists.clocks says of an open case, in SQL: a response is due unless
    one was made, a resolution is due, a referral has its own due date. `now` goes into
    `params` as `name`."""
    params[name] = now
    return (
        f"((c.first_response_at IS NULL AND c.first_response_due < :{name})"
        f" OR c.resolution_due < :{name}"
        f" OR (c.status = 'referred' AND c.referral_due < :{name}))"
    )


# A filter value that asks for cases without the field (no department, nobody yet...).
NONE = "-"

# The dimensions a report groups by: name -> column.
DIMENSIONS = {
    "channel": "channel",
    "category": "category",
    "department": "department_id",
    "member": "assignee_id",
    "source": "source_tag",
    "company": "company",
}


@dataclass(frozen=True)
class Scope:
    """The cases a report counts: received in [since, until) (UTC text), all or a member's,
    all or those raised at one themed reception."""

    since: str
    until: str
    member: str | None = None
    reception: int | None = None


_NAMES = (
    "received",
    "response_counted",
    "response_met",
    "resolution_counted",
    "resolution_met",
    "rated",
    "satisfied",
    "referred",
    "referrals",
    "referral_counted",
    "referral_on_time",
    "referral_late",
    "presidium",
    "overdue",
    "not_counted",
)
_PER_REFERRAL = ("referrals", "referral_counted", "referral_on_time", "referral_late")
_PER_RATING = ("rated", "satisfied")


class Measures:
    """The SQL condition of each figure, for the case `c` at the UTC time `now` (text); its
    values go into `params`. Each case carries its due times (stored with it, from the
    targets in force when it came in), so every condition reads the row alone."""

    NAMES = _NAMES
    # Counted per referral (`referrals r` of the case `c`: a case referred twice counts twice),
    # the rest per case. `referred` is per case: the cases referred at least once.
    PER_REFERRAL = _PER_REFERRAL
    # Counted per rating (`ratings g` of the case `c`: a case rated, reopened, resolved and
    # rated again counts twice), each under the member it is credited to.
    PER_RATING = _PER_RATING
    PER_CASE = tuple(name for name in _NAMES if name not in (*_PER_REFERRAL, *_PER_RATING))

    def __init__(self, now: str, params: dict[str, Any]) -> None:
        self.params = params
        params["now"] = now
        self.now = now

    def _referral_parts(self, name: str) -> tuple[str, str]:
        """A per-referral figure's condition in two parts: on the case `c`, and on its
        referral `r`."""
        parts = {
            "referrals": ("1 = 1", "1 = 1"),
            # Answered; or past its due date: still waiting, or taken back after it (a
            # referral taken back before its due date — referred again, the case
            # reassigned, withdrawn or rejected — is neither on time nor late).
            "referral_counted": ("1 = 1", "(r.answered_at IS NOT NULL OR r.ended_at > r.due"
                                 " OR (r.ended_at IS NULL AND r.due < :now))"),
            "referral_on_time": ("1 = 1", "r.answered_at <= r.due"),
            # Past its due date without an answer: still waiting, or taken back after it.
            "referral_late": ("1 = 1", "(r.answered_at IS NULL AND (r.ended_at > r.due"
                              " OR (r.ended_at IS NULL AND r.due < :now)))"),
        }  # fmt: skip
        if name not in parts:
            raise ValueError(f"not a referral measure: {name}")
        return parts[name]

    def of_referral(self, name: str) -> str:
        """The SQL condition of a per-referral figure, on the referral `r` of the case `c`."""
        case, referral = self._referral_parts(name)
        return f"({case} AND {referral})"

    @staticmethod
    def of_rating(name: str) -> str:
        """The SQL condition of a per-rating figure, on the rating `g`."""
        parts = {"rated": "1 = 1", "satisfied": "g.rating >= 4"}
        if name not in parts:
            raise ValueError(f"not a rating measure: {name}")
        return parts[name]

    def condition(self, name: str, department: str | None = None, member: str | None = None) -> str:
        """The SQL condition of a figure on the case `c`: for a per-referral one (and for
        `referred`), that the case had such a referral — to `department`, when given (read
        from that department's referrals, through referrals_department); for a per-rating
        one, that it had such a rating — credited to `member`, when given (NONE: to no
        one)."""
        if name in self.PER_RATING:
            rating = self.of_rating(name)
            if member is None:
                return (
                    "EXISTS (SELECT 1 FROM ratings g"  # noqa: S608 - ours
                    f" WHERE g.case_id = c.id AND {rating})"
                )
            credited = "g.member_id IS NULL"
            if member != NONE:
                self.params["rating_member"] = member
                credited = "g.member_id = :rating_member"
            return (
                f"c.id IN (SELECT g.case_id FROM ratings g"  # noqa: S608 - ours
                f" WHERE {credited} AND {rating})"
            )
        if name in self.PER_REFERRAL or (name == "referred" and department is not None):
            case, referral = self._referral_parts("referrals" if name == "referred" else name)
            if department is None:
                return (
                    f"({case} AND EXISTS (SELECT 1 FROM referrals r"  # noqa: S608 - ours
                    f" WHERE r.case_id = c.id AND {referral}))"
                )
            self.params["referral_department"] = department
            return (
                f"({case} AND c.id IN (SELECT r.case_id FROM referrals r"  # noqa: S608 - ours
                f" WHERE r.department_id = :referral_department AND {referral}))"
            )
        conditions = {
            "received": "1 = 1",
            "not_counted": NOT_COUNTED,
            # Answered, or the target has passed unanswered (before it was withdrawn or
            # rejected, for one that was).
            "response_counted": "(c.first_response_at IS NOT NULL"
            f" OR c.first_response_due < {STOPPED})",
            "response_met": "c.first_response_at <= c.first_response_due",
            # Resolved (now or before a reopening), or the target has passed.
            "resolution_counted": "(c.resolved_at IS NOT NULL OR c.reopens > 0"
            f" OR c.resolution_due < {STOPPED})",
            # resolved_at is cleared when a case is reopened: set, it is the latest
            # resolution, and the case was not reopened since.
            "resolution_met": "c.resolved_at <= c.resolution_due",
            # Referred at least once (the latest referral's department is the case's).
            "referred": "c.department_id IS NOT NULL",
            "presidium": "c.presidium = 1",
        }
        if name == "overdue":
            return f"(c.{OPEN_CASES} AND {overdue_sql(self.params, self.now)})"
        if name not in conditions:
            raise ValueError(f"not a report measure: {name}")
        return conditions[name]


def _counts(names: tuple[str, ...], condition: Callable[[str], str]) -> str:
    """SQL for how many rows meet each named figure's condition, each `AS` its name."""
    return ", ".join(
        f"sum(CASE WHEN {condition(name)} THEN 1 ELSE 0 END) AS {name}" for name in names
    )


def scope_sql(scope: Scope, params: dict[str, Any]) -> str:
    """The cases of a report, as a WHERE condition on `c` (the received_at index serves it)."""
    params |= {"since": scope.since, "until": scope.until}
    where = "c.received_at >= :since AND c.received_at < :until"
    if scope.member is not None:
        params["member"] = scope.member
        where += " AND c.assignee_id = :member"
    if scope.reception is not None:
        params["reception"] = scope.reception
        where += " AND c.reception_id = :reception"
    return where


class ReportRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _sums(
        self, now: str, params: dict[str, Any], names: tuple[str, ...] = Measures.PER_CASE
    ) -> str:
        return _counts(names, Measures(now, params).condition)

    async def grouped(
        self,
        scope: Scope,
        now: str,
        by: tuple[str, ...],
        *,
        measures: tuple[str, ...] = Measures.PER_CASE,
    ) -> list[Row]:
        """Each per-case measure's count per combination of the `by` dimensions."""
        params: dict[str, Any] = {}
        columns = [f"c.{DIMENSIONS[d]} AS {d}" for d in by]
        group = f" GROUP BY {', '.join(f'c.{DIMENSIONS[d]}' for d in by)}" if by else ""
        sql = (
            f"SELECT {', '.join([*columns, self._sums(now, params, measures)])}"  # noqa: S608 - ours
            f" FROM cases c WHERE {scope_sql(scope, params)}{group}"
        )
        return await self.db.fetch_aside(sql, params)

    async def referrals(self, scope: Scope, now: str) -> list[Row]:
        """Each per-referral measure's count per department, over the referrals of the
        period's cases (every referral, not only each case's latest)."""
        params: dict[str, Any] = {}
        sums = _counts(Measures.PER_REFERRAL, Measures(now, params).of_referral)
        # The period read through referrals_received (each referral has its case's receipt).
        sql = (
            f"SELECT r.department_id AS department, {sums}"  # noqa: S608 - fragments are ours
            " FROM referrals r JOIN cases c ON c.id = r.case_id"
            " WHERE r.received_at >= :since AND r.received_at < :until"
            f" AND {scope_sql(scope, params)} GROUP BY r.department_id"
        )
        return await self.db.fetch_aside(sql, params)

    async def ratings(
        self, scope: Scope, day: tuple[str, list[tuple[str | None, int]]] | None = None
    ) -> list[Row]:
        """Each per-rating measure's count per combination of the dimensions but company
        (the member is the one each rating is credited to) — or, given `day` (the point's
        timezone and its offsets, as `by_day` takes them), per local day and channel —
        over the ratings of the period's cases (every rating, not only each case's latest).
        A member's report counts the ratings credited to them."""
        params: dict[str, Any] = {}
        sums = _counts(Measures.PER_RATING, Measures.of_rating)
        where = scope_sql(dataclasses.replace(scope, member=None), params)
        if scope.member is not None:
            params["member"] = scope.member
            where += " AND g.member_id = :member"
        if day is not None:
            by = {"day": self.local_day(*day, params), "channel": "c.channel"}
        else:
            # The case's dimensions, but the member: the one the rating is credited to.
            by = {d: f"c.{column}" for d, column in DIMENSIONS.items() if d != "company"}
            by["member"] = "g.member_id"
        columns = ", ".join(f"{column} AS {d}" for d, column in by.items())
        # The period read through ratings_received too (each rating has its case's receipt):
        # each engine starts from whichever side serves it best.
        sql = (
            f"SELECT {columns}, {sums}"  # noqa: S608 - fragments are ours
            " FROM ratings g JOIN cases c ON c.id = g.case_id"
            " WHERE g.received_at >= :since AND g.received_at < :until"
            f" AND {where} GROUP BY {', '.join(by.values())}"
        )
        return await self.db.fetch_aside(sql, params)

    def local_day(
        self, tz: str, offsets: list[tuple[str | None, int]], params: dict[str, Any]
    ) -> str:
        """SQL for the local date a case was received on: PostgreSQL knows the timezone;
        SQLite is given its offsets over the period (`offsets`: until a UTC time, minutes),
        and the time to the second: its date() rounds to the millisecond, and 23:59:59.9997
        on a period's last day would be the day after."""
        if self.db.dialect == "postgresql":
            params["tz"] = tz
            return "to_char(c.received_at::timestamptz AT TIME ZONE :tz, 'YYYY-MM-DD')"
        if len(offsets) == 1:
            params["off0"] = f"{offsets[0][1]:+d} minutes"
            return "date(substr(c.received_at, 1, 19), :off0)"
        whens = []
        for n, (until, minutes) in enumerate(offsets):
            params[f"off{n}"] = f"{minutes:+d} minutes"
            if until is None:
                whens.append(f"ELSE :off{n}")
            else:
                params[f"until{n}"] = until
                whens.append(f"WHEN c.received_at < :until{n} THEN :off{n}")
        return f"date(substr(c.received_at, 1, 19), CASE {' '.join(whens)} END)"

    async def by_day(
        self, scope: Scope, now: str, tz: str, offsets: list[tuple[str | None, int]]
    ) -> list[Row]:
        """Every measure's count per local day (the point's timezone `tz`, whose offsets
        over the period are `offsets`) and channel."""
        params: dict[str, Any] = {}
        day = self.local_day(tz, offsets, params)
        sql = (
            f"SELECT {day} AS day, c.channel AS channel, {self._sums(now, params)}"  # noqa: S608 - ours
            f" FROM cases c WHERE {scope_sql(scope, params)} GROUP BY 1, 2"
        )
        return await self.db.fetch_aside(sql, params)

    async def minutes(self, scope: Scope, column: str) -> list[tuple[int, int]]:
        """How many of the period's cases took how long from their start to `column`
        (first_response_at or resolved_at): (minutes, cases), by the minute up to a day and
        by ten minutes beyond. The medians are read from these."""
        if column not in ("first_response_at", "resolved_at"):
            raise ValueError(f"not a time to count the minutes to: {column}")
        params: dict[str, Any] = {}
        took = self._seconds(f"c.{column}", START)
        minute = (
            f"(CASE WHEN {took} < 86400 THEN {self._floor(f'{took} / 60')}"
            f" ELSE {self._floor(f'{took} / 600')} * 10 END)"
        )
        sql = (
            f"SELECT {minute} AS minute, count(*) AS n FROM cases c"  # noqa: S608 - fragments are ours
            f" WHERE {scope_sql(scope, params)} AND c.{column} IS NOT NULL GROUP BY 1"
        )
        rows = await self.db.fetch_aside(sql, params)
        return [(max(0, int(r["minute"])), int(r["n"])) for r in rows]

    async def expiry(self, scope: Scope, now: str) -> str | None:
        """The earliest due time at or after `now` of a period's case still waiting for
        what is due (a first response, a resolution, a department's answer): until then the
        period's figures cannot change by the clock alone (a due time passes once `now` is
        beyond it: one equal to `now` has not passed yet). None: they never will."""
        params: dict[str, Any] = {"now": now}
        sql = (
            "SELECT min(CASE WHEN c.first_response_at IS NULL AND c.first_response_due >= :now"  # noqa: S608 - fragments are ours
            " THEN c.first_response_due END) AS respond,"
            " min(CASE WHEN c.resolved_at IS NULL AND c.resolution_due >= :now"
            " THEN c.resolution_due END) AS resolve,"
            " min(CASE WHEN c.department_id IS NOT NULL AND c.referral_answered_at IS NULL"
            " AND c.referral_due >= :now THEN c.referral_due END) AS referral"
            f" FROM cases c WHERE {scope_sql(scope, params)}"
        )
        rows = await self.db.fetch_aside(sql, params)
        dues = [rows[0][k] for k in ("respond", "resolve", "referral") if rows and rows[0][k]]
        return min(dues) if dues else None

    async def changed_since(self, scope: Scope, at: str) -> bool:
        """Whether a case received in the period changed at or after `at` (through
        cases_updated). Any case, for a member's figures too: one reassigned away from the
        member is theirs no more, and changed all the same."""
        scope = dataclasses.replace(scope, member=None)
        params: dict[str, Any] = {"at": at}
        # SQLite would rather read the month's cases; the ones changed since are fewer.
        hint = " INDEXED BY cases_updated" if self.db.dialect == "sqlite" else ""
        sql = (
            f"SELECT 1 AS found FROM cases c{hint} WHERE c.updated_at >= :at"  # noqa: S608 - fragments are ours
            f" AND {scope_sql(scope, params)} LIMIT 1"
        )
        return bool(await self.db.fetch_aside(sql, params))

    async def saved_part(self, scope: Scope) -> Row | None:
        """A period's figures as saved by `save_part`: computed_at, expires_at, body."""
        rows = await self.db.fetch_aside(
            "SELECT computed_at, expires_at, body FROM report_parts"
            " WHERE scope = :scope AND since = :since AND until = :until",
            {"scope": scope.member or "", "since": scope.since, "until": scope.until},
        )
        return rows[0] if rows else None

    async def save_part(
        self, scope: Scope, computed_at: str, expires_at: str | None, body: str
    ) -> None:
        """Keep a period's figures (a past month's): they hold while no case of it changes
        (`changed_since`) and until `expires_at`."""
        params = {
            "scope": scope.member or "",
            "since": scope.since,
            "until": scope.until,
            "computed_at": computed_at,
            "expires_at": expires_at,
            "body": body,
        }

        async def apply(db: Conn) -> None:
            await db.execute(
                "INSERT INTO report_parts (scope, since, until, computed_at, expires_at, body)"
                " VALUES (:scope, :since, :until, :computed_at, :expires_at, :body)"
                " ON CONFLICT (scope, since, until) DO UPDATE SET computed_at ="
                " excluded.computed_at, expires_at = excluded.expires_at, body = excluded.body",
                params,
            )

        await self.db.write(apply)

    async def forget_parts(self) -> None:
        """Drop every saved period: after a change the updated_at of cases does not show
        (due times filled in, past cases loaded)."""

        async def apply(db: Conn) -> None:
            await db.execute("DELETE FROM report_parts")

        await self.db.write(apply)

    async def presidium_items(self, scope: Scope) -> list[Row]:
        """The period's cases escalated to the presidium, oldest first, with the reason
        given (the latest presidium event's text)."""
        params: dict[str, Any] = {}
        sql = (
            "SELECT c.code, c.received_at, c.category, c.company, c.status,"  # noqa: S608 - fragments are ours
            " (SELECT e.detail FROM events e WHERE e.case_id = c.id AND e.kind = 'presidium'"
            "  ORDER BY e.id DESC LIMIT 1) AS detail"
            f" FROM cases c WHERE {scope_sql(scope, params)} AND c.presidium = 1"
            " ORDER BY c.received_at, c.id"
        )
        return await self.db.fetch_aside(sql, params)

    async def export_rows(
        self, scope: Scope, after: tuple[str, int] | None, limit: int
    ) -> list[Row]:
        """The period's cases for an export in order of receipt, `limit` at a time after
        the position `after` (received_at, id): never the submitter's name, phone or text."""
        params: dict[str, Any] = {}
        below = ""
        if after is not None:
            below = " AND (c.received_at, c.id) > (:after_at, :after_id)"
            params |= {"after_at": after[0], "after_id": after[1]}
        sql = (
            "SELECT c.id, c.code, c.channel, c.received_at, c.category, c.department_id,"  # noqa: S608 - fragments are ours
            " c.assignee_id, c.source_tag, c.company, c.status, c.first_response_at,"
            " c.held_until, c.resolved_at, c.reopens, c.rating, c.presidium, c.closed_at,"
            " c.first_response_due, c.resolution_due"
            f" FROM cases c WHERE {scope_sql(scope, params)}{below}"
            f" ORDER BY c.received_at, c.id LIMIT {int(limit)}"
        )
        return await self.db.fetch_aside(sql, params)

    def _floor(self, expr: str) -> str:
        if self.db.dialect == "postgresql":
            return f"floor({expr})::bigint"
        return f"CAST({expr} AS INTEGER)"  # truncates, as floor does for times not below zero

    def _seconds(self, later: str, earlier: str) -> str:
        """SQL for the seconds from one stored time to another."""
        if self.db.dialect == "postgresql":
            return f"extract(epoch from ({later}::timestamptz - {earlier}::timestamptz))"
        # julianday's days are doubles: an hour comes out as 3599.99998 s. Rounded to the
        # millisecond (the doubles hold it), whole minutes stay whole, as on PostgreSQL.
        return f"round((julianday({later}) - julianday({earlier})) * 86400.0, 3)"
