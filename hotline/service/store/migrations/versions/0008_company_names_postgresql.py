"""PostgreSQL too looks a company's name up instead of reading it out of every case.

A whole company name ("嘉兴机械3号有限公司") went through pg_trgm's index over cases.company,
where the trigrams every company shares (有限公, 限公司) list every case: ~130 ms a search at
a million cases. As on SQLite (migration 0007), the names get a table of their own,
`cases_search_companies` (one row per name, kept by a trigger on cases; names are never
removed), with a pg_trgm index. A search matches the names (a few hundred rows), then reads
those companies' cases through `cases_company` (`company = ANY(names)`), planned for the
names found. The index over cases.company (`cases_company_trgm`) stays: a search matching
more names than a search takes (caselists.NAMES) reads through it.

On PostgreSQL the table is the name alone (the primary key); SQLite's has a rowid for its
full-text table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 20:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_UPGRADE = [
    "CREATE TABLE cases_search_companies (name text PRIMARY KEY)",
    "INSERT INTO cases_search_companies (name)"
    " SELECT DISTINCT company FROM cases WHERE company IS NOT NULL",
    "CREATE INDEX cases_search_companies_trgm ON cases_search_companies"
    " USING gin (name gin_trgm_ops)",
    "CREATE FUNCTION cases_search_companies_add() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN"
    " INSERT INTO cases_search_companies (name) VALUES (NEW.company) ON CONFLICT DO NOTHING;"
    " RETURN NULL;"
    " END $$",
    "CREATE TRIGGER cases_search_companies_insert AFTER INSERT ON cases FOR EACH ROW"
    " WHEN (NEW.company IS NOT NULL) EXECUTE FUNCTION cases_search_companies_add()",
    "CREATE TRIGGER cases_search_companies_update AFTER UPDATE OF company ON cases FOR EACH ROW"
    " WHEN (NEW.company IS NOT NULL) EXECUTE FUNCTION cases_search_companies_add()",
]
_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS cases_search_companies_update ON cases",
    "DROP TRIGGER IF EXISTS cases_search_companies_insert ON cases",
    "DROP FUNCTION IF EXISTS cases_search_companies_add()",
    "DROP TABLE IF EXISTS cases_search_companies",
]


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for sql in _UPGRADE:
            op.execute(sql)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for sql in _DOWNGRADE:
            op.execute(sql)
