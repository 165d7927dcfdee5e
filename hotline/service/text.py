"""Text as people send it, made one shape: what every field's check and the console's and the
API's case actions share."""

from __future__ import annotations

import re
import unicodedata

# Control characters (C0 but tab and newline, DEL, C1), line and paragraph separators, the
# byte order mark, and the bidirectional embeddings, overrides and isolates (text that reads
# differently from what it holds). Tab and newline are allowed where a field is multi-line.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069]")


def normalized(value: str) -> str:
    """NFC, line breaks as \\n, no spaces at either end."""
    return unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n")).strip()
