"""The console's case lists: a view narrowed by filters and a text or code search, newest
first. Filters arrive as values, never as SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hotline.service.cases import Case
from hotline.service.store.cases import SELECT, case_from_row
from hotline.service.store.database import Database, in_list


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


class CaseListRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def listing(self, filters: Listing, limit: int) -> list[Case]:
        """The console's lists: newest first, at most `limit`."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if filters.statuses:
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
            # lower() on both sides: ASCII case is ignored on both engines (SQLite lower()
            # folds only ASCII; PostgreSQL folds more: search by text moves to full-text).
            escaped = filters.text.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            like = f"%{escaped}%"
            where.append(
                "(c.code = :code OR lower(c.text) LIKE lower(:like) ESCAPE '\\'"
                " OR lower(c.company) LIKE lower(:like) ESCAPE '\\')"
            )
            params |= {"code": filters.code or "", "like": like}
        # Every fragment of `where` is written here; values go in as parameters.
        clause = " WHERE " + " AND ".join(where) if where else ""
        sql = f"{SELECT}{clause} ORDER BY c.received_at DESC LIMIT {int(limit)}"
        return [case_from_row(r) for r in await self.db.fetch(sql, params)]
