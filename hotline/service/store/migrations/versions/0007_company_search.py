"""A search for a company's name looks the name up instead of reading it out of every case.

A whole company name ("嘉兴机械3号有限公司") went through SQLite's trigram index over the
text and the company, where the trigrams that every company shares (有限公, 限公司) list
every case: ~200 ms a search at a million cases. Now:

- `cases_company` (company, received_at, id): a company's cases, newest first (on both
  engines). The lists behind a report's "by company" figures keep walking the received
  period (`cases_received`), as SQLite is told to.
- SQLite: the trigram index covers the request's text alone (rebuilt), and the companies'
  names have a table and a trigram index of their own (`cases_search_companies`, one row
  per name, filled by a trigger on cases; names are never removed: a name no case has any
  more finds nothing). A search matches the names (a few hundred rows), then reads those
  companies' cases through `cases_company`.
- PostgreSQL keeps its pg_trgm GIN indexes (migration 0002).

A later migration that rebuilds `cases` in batch mode on SQLite drops every trigger on it:
it must create again the text's triggers (`_case_search(("text",))` here, not 0002's) and
the two that fill `cases_search_companies`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 18:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _case_search(columns: tuple[str, ...]) -> list[str]:
    """SQLite's trigram index over these columns of cases, built, and the triggers that keep
    it (as migration 0002 made it for text and company)."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    add = f"INSERT INTO cases_search(rowid, {names}) VALUES (new.id, {new});"  # noqa: S608
    drop = (
        f"INSERT INTO cases_search(cases_search, rowid, {names})"  # noqa: S608 - our columns
        f" VALUES ('delete', old.id, {old});"
    )
    return [
        f"CREATE VIRTUAL TABLE cases_search USING fts5({names},"
        " content='cases', content_rowid='id', tokenize='trigram')",
        "INSERT INTO cases_search(cases_search) VALUES ('rebuild')",
        f"CREATE TRIGGER cases_search_insert AFTER INSERT ON cases BEGIN {add} END",
        f"CREATE TRIGGER cases_search_delete AFTER DELETE ON cases BEGIN {drop} END",
        f"CREATE TRIGGER cases_search_update AFTER UPDATE OF {names} ON cases"
        f" BEGIN {drop} {add} END",
    ]


_DROP_CASE_SEARCH = [
    *(f"DROP TRIGGER IF EXISTS cases_search_{name}" for name in ("insert", "delete", "update")),
    "DROP TABLE IF EXISTS cases_search",
]

_NAME = "INSERT OR IGNORE INTO cases_search_companies (name) VALUES (new.company);"
_COMPANY_SEARCH = [
    "CREATE TABLE cases_search_companies ("
    " id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE) STRICT",
    "CREATE VIRTUAL TABLE cases_search_companies_fts USING fts5(name,"
    " content='cases_search_companies', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER cases_search_companies_add AFTER INSERT ON cases_search_companies"
    " BEGIN INSERT INTO cases_search_companies_fts (rowid, name) VALUES (new.id, new.name); END",
    "INSERT INTO cases_search_companies (name)"
    " SELECT DISTINCT company FROM cases WHERE company IS NOT NULL ORDER BY company",
    "CREATE TRIGGER cases_search_companies_insert AFTER INSERT ON cases"
    f" WHEN new.company IS NOT NULL BEGIN {_NAME} END",
    "CREATE TRIGGER cases_search_companies_update AFTER UPDATE OF company ON cases"
    f" WHEN new.company IS NOT NULL BEGIN {_NAME} END",
]
_DROP_COMPANY_SEARCH = [
    "DROP TRIGGER IF EXISTS cases_search_companies_update",
    "DROP TRIGGER IF EXISTS cases_search_companies_insert",
    "DROP TABLE IF EXISTS cases_search_companies_fts",
    "DROP TABLE IF EXISTS cases_search_companies",
]


def upgrade() -> None:
    op.create_index("cases_company", "cases", ["company", "received_at", "id"])
    if op.get_context().dialect.name == "sqlite":
        for sql in [*_DROP_CASE_SEARCH, *_case_search(("text",)), *_COMPANY_SEARCH]:
            op.execute(sql)


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for sql in [*_DROP_COMPANY_SEARCH, *_DROP_CASE_SEARCH, *_case_search(("text", "company"))]:
            op.execute(sql)
    op.drop_index("cases_company", table_name="cases")
