"""Searches of two characters look their pair up in an index of each text's pairs.

Two characters are the common Chinese search (路灯, 停电, 噪音), and a trigram index has
nothing to look up for them: such a search read the cases newest first until a page was
found, every case for a rare word (store/bigrams.py says more).

- SQLite: `cases_search_bigrams`, a contentless FTS5 table (unicode61 tokens, case folded,
  diacritics kept) of each case's pairs of adjacent letters or digits, filled here (in
  Python, a thousand cases at a time) and then by triggers on cases through the SQL
  function `hotline_bigrams`, which the program registers on each connection.
- PostgreSQL: the SQL function `hotline_bigrams(text)` (every pair of the lower-cased text)
  and a GIN index over it, `cases_search_bigrams`.

A later migration that rebuilds `cases` in batch mode on SQLite drops every trigger on it:
it must create the three here again, with those of 0007 (the text's trigram index and the
companies' names). The table is contentless: its rows are deleted with the pairs they were
made of, so a change to what `hotline_bigrams` gives needs the table filled anew.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 07:30:00
"""

from __future__ import annotations

import itertools

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _bigrams(text: str | None) -> str:
    """store/bigrams.py's `bigrams` when this revision was written."""
    if not text:
        return ""
    pairs = (a + b for a, b in itertools.pairwise(text) if a.isalnum() and b.isalnum())
    return " ".join(dict.fromkeys(pairs))


_ADD = "INSERT INTO cases_search_bigrams (rowid, grams) VALUES (new.id, hotline_bigrams(new.text));"
_DROP = (
    "INSERT INTO cases_search_bigrams (cases_search_bigrams, rowid, grams)"
    " VALUES ('delete', old.id, hotline_bigrams(old.text));"
)
_SQLITE = [
    "CREATE VIRTUAL TABLE cases_search_bigrams USING fts5(grams, content='', detail='none',"
    " tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER cases_search_bigrams_insert AFTER INSERT ON cases BEGIN {_ADD} END",
    f"CREATE TRIGGER cases_search_bigrams_delete AFTER DELETE ON cases BEGIN {_DROP} END",
    "CREATE TRIGGER cases_search_bigrams_update AFTER UPDATE OF text ON cases"
    f" BEGIN {_DROP} {_ADD} END",
]
_POSTGRES = [
    """
    CREATE OR REPLACE FUNCTION hotline_bigrams(t text) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
      SELECT coalesce(array_agg(DISTINCT substr(lower(t), i, 2)), '{}')
      FROM generate_series(1, char_length(t) - 1) AS i
    $$
    """,
    "CREATE INDEX cases_search_bigrams ON cases USING gin (hotline_bigrams(text))",
]


def _fill_sqlite() -> None:
    """Each stored case's pairs, a thousand cases at a time (any driver: no SQL function)."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text("SELECT id, text FROM cases WHERE id > :last ORDER BY id LIMIT 1000"),
            {"last": last},
        ).all()
        if not rows:
            return
        conn.execute(
            sa.text("INSERT INTO cases_search_bigrams (rowid, grams) VALUES (:id, :grams)"),
            [{"id": row.id, "grams": _bigrams(row.text)} for row in rows],
        )
        last = rows[-1].id


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for sql in _POSTGRES:
            op.execute(sql)
        return
    op.execute(_SQLITE[0])
    _fill_sqlite()
    for sql in _SQLITE[1:]:
        op.execute(sql)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS cases_search_bigrams")
        op.execute("DROP FUNCTION IF EXISTS hotline_bigrams(text)")
        return
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS cases_search_bigrams_{name}")
    op.execute("DROP TABLE IF EXISTS cases_search_bigrams")
