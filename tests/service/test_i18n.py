"""Both catalogs are complete: every string the templates and code mark has a translation."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import hotline
from hotline.service.i18n import duration

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


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (0, "不到 1 分钟", "under a minute"),
        (-20, "不到 1 分钟", "under a minute"),  # a clock just past due
        (59, "不到 1 分钟", "under a minute"),
        (60, "1 分钟", "1 min"),
        (1800, "30 分钟", "30 min"),
        (2 * 3600 + 300, "2 小时 5 分钟", "2 h 5 min"),
        (3 * 86400 + 4 * 3600, "3 天 4 小时", "3 d 4 h"),
    ],
)
def test_a_duration_as_people_say_it(seconds: float, zh: str, en: str) -> None:
    assert duration(seconds, "zh-CN") == zh
    assert duration(seconds, "en") == en
