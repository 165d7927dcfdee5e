"""Both catalogs are complete: every string the templates and code mark has a translation."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import hotline

ROOT = Path(hotline.__file__).parent
METHODS = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
OPTIONS = {"web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def marked_strings() -> set[str]:
    found: set[str] = set()
    for _, _, message, _, _ in extract_from_dir(
        str(ROOT),
        method_map=METHODS,
        options_map=OPTIONS,
        keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
    ):
        found.update([message] if isinstance(message, str) else message)
    return found


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_catalog_is_complete(lang: str) -> None:
    path = ROOT / "service" / "locale" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as f:
        catalog = read_po(f)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    strings = marked_strings()
    assert len(strings) > 40
    missing = sorted(strings - translated)
    assert not missing, f"{lang} lacks translations for: {missing}"
