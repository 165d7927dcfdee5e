"""Two-character searches through an index: the common Chinese search (路灯, 停电, 噪音).

A trigram index (SQLite FTS5's trigram tokenizer, PostgreSQL's pg_trgm) has nothing to look
up for two characters, so such a search read the cases newest first until a page was found:
quick for a common word, every case for a rare one. Migration 0010 adds an index of each
case text's pairs of adjacent characters:

- SQLite: `cases_search_bigrams`, a contentless FTS5 table (unicode61, which folds case as
  the trigram index does, diacritics kept) whose rows are the pairs of letters or digits
  `bigrams` gives, kept by triggers on cases through the SQL function `hotline_bigrams`
  (this module's `bigrams`), which every connection that writes cases registers
  (store/database.py). A pair with anything else in it (punctuation, a space) is not a
  token there, so only a search of two letters or digits asks it (`indexed`).
- PostgreSQL: a GIN index over `hotline_bigrams(text)`, an SQL function that gives every
  pair of the lower-cased text, whatever its characters.

PostgreSQL checks what its index finds against the text with ILIKE. SQLite's tokens are the
pairs themselves, so what it finds for a pair of letters or digits is what a read of the
text would (case folded as FTS5 folds it, beyond ASCII, as the trigram index does).
"""

from __future__ import annotations

import itertools

FUNCTION = "hotline_bigrams"


def bigrams(text: str | None) -> str:
    """The text's pairs of adjacent letters or digits, each once, separated by spaces:
    SQLite's row in cases_search_bigrams for a case."""
    if not text:
        return ""
    pairs = (a + b for a, b in itertools.pairwise(text) if a.isalnum() and b.isalnum())
    return " ".join(dict.fromkeys(pairs))


def indexed(text: str, dialect: str) -> bool:
    """Whether a search of two characters has the bigram index to ask (see the module)."""
    return len(text) == 2 and (dialect == "postgresql" or text.isalnum())
