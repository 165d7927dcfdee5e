"""Case search and the newest-first lists: an index on (received_at, id) for the console's
keyset pages, a partial one of open cases only for the in-work views, and each engine's
full-text index over a case's text and company that works for Chinese — SQLite FTS5 with
the trigram tokenizer (an external-content table kept by triggers), PostgreSQL pg_trgm GIN
indexes (`pg_trgm` is a trusted extension: the database's owner may create it).

Both find substrings of three characters or more through the index; shorter searches read
the cases newest first. A later migration that rebuilds `cases` in batch mode on SQLite
drops the triggers with the old table: it must create them again — as migration 0007 left
them (the text alone, and the companies' names), not as `_sqlite_triggers` here makes them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE cases_search USING fts5("
    " text, company, content='cases', content_rowid='id', tokenize='trigram')",
    "INSERT INTO cases_search(cases_search) VALUES ('rebuild')",
]


def _sqlite_triggers() -> list[str]:
    add = "INSERT INTO cases_search(rowid, text, company) VALUES (new.id, new.text, new.company);"
    drop = (
        "INSERT INTO cases_search(cases_search, rowid, text, company)"
        " VALUES ('delete', old.id, old.text, old.company);"
    )
    return [
        f"CREATE TRIGGER cases_search_insert AFTER INSERT ON cases BEGIN {add} END",
        f"CREATE TRIGGER cases_search_delete AFTER DELETE ON cases BEGIN {drop} END",
        "CREATE TRIGGER cases_search_update AFTER UPDATE OF text, company ON cases"
        f" BEGIN {drop} {add} END",
    ]


_POSTGRES_SEARCH = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX cases_text_trgm ON cases USING gin (text gin_trgm_ops)",
    "CREATE INDEX cases_company_trgm ON cases USING gin (company gin_trgm_ops)",
]


# workflow.OPEN when this revision was written.
_OPEN = "status IN ('acknowledged', 'assigned', 'received', 'referred', 'reopened', 'responded')"


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch_op:
        batch_op.create_index("cases_received", ["received_at", "id"])
        batch_op.create_index(
            "cases_open",
            ["received_at", "id"],
            sqlite_where=sa.text(_OPEN),
            postgresql_where=sa.text(_OPEN),
        )
    if op.get_context().dialect.name == "postgresql":
        for sql in _POSTGRES_SEARCH:
            op.execute(sql)
    else:
        for sql in [*_SQLITE_SEARCH, *_sqlite_triggers()]:
            op.execute(sql)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS cases_company_trgm")
        op.execute("DROP INDEX IF EXISTS cases_text_trgm")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS cases_search_{name}")
        op.execute("DROP TABLE IF EXISTS cases_search")
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_index("cases_open")
        batch_op.drop_index("cases_received")
