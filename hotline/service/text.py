"""Text as people send it, made one shape: what every field's check and the console's and the
API's case actions share."""

from __future__ import annotations

import re
import unicodedata

# Control characters (C0 but tab and newline, DEL, C1), line and paragraph separators, the
# byte order mark, and the bidirectional embeddings, overrides and isolates (text that reads
# differently from what it holds). Tab and newline are allowed where a field is multi-line.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\u202a-\u202e\u2066-\u2069]")


# What text pasted from a document or a PDF carries for a line break (CR LF, CR, VT, FF,
# NEL, the line and paragraph separators) becomes a newline; a byte order mark goes.
_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")


def normalized(value: str) -> str:
    """NFC, every kind of line break as \\n, no byte order mark, no spaces at either end."""
    text = _BREAKS.sub("\n", value).replace("\ufeff", "")
    return unicodedata.normalize("NFC", text).strip()
