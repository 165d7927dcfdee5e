"""Translation, in one place: the message catalogs (gettext with Babel, read at start from the
.po sources in locale/ beside this module, so there is no build step), `N_` to mark a
message, `gettext` in the language of the request being served (set by the web layer),
`translate` in a language given outright (texts, notifications), and `Refusal`."""

from __future__ import annotations

import io
from collections.abc import Iterable
from contextvars import ContextVar
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = {"zh-CN": "zh_CN", "en": "en"}

_translations: ContextVar[Translations] = ContextVar("translations")


@cache
def catalogs() -> dict[str, Translations]:
    loaded = {}
    for lang, folder in LANGUAGES.items():
        po = resources.files("hotline.service").joinpath(f"locale/{folder}/LC_MESSAGES/messages.po")
        with po.open("rb") as f:
            catalog = read_po(f, locale=folder)
        mo = io.BytesIO()
        write_mo(mo, catalog)
        mo.seek(0)
        loaded[lang] = Translations(mo)
    return loaded


def gettext(message: str) -> str:
    translations = _translations.get(None)
    return translations.gettext(message) if translations else message


def ngettext(singular: str, plural: str, n: int) -> str:
    translations = _translations.get(None)
    if translations is None:
        return singular if n == 1 else plural
    return translations.ngettext(singular, plural, n)


def listing(items: Iterable[str]) -> str:
    """Names in a list as the reader's language writes one: 甲、乙 / A, B."""
    return gettext(", ").join(items)


def translate(lang: str, message: str) -> str:
    """A message in a given language, outside any request (SMS texts, notifications)."""
    return catalogs()[lang if lang in LANGUAGES else "zh-CN"].gettext(message)


class Refusal(Exception):
    """A change that cannot be made: `field` names the form field at fault, `message` is a
    catalog id with `params` (shown in the reader's language with `explain`)."""

    def __init__(self, field: str, message: str, **params: object) -> None:
        super().__init__(f"{field}: {message % params}")
        self.field = field
        self.message = message
        self.params = params

    def text(self) -> str:
        """The message in the language of the request being served."""
        return gettext(self.message) % self.params

    def explain(self) -> str:
        """The message, naming the field at fault (as people call it, in their language)."""
        return named(self.field, self.text()) if self.field else self.text()


def named(field: str, problem: str) -> str:
    """A problem with a form field: "名称：1 至 100 个字符" ("Name: 1 to 100 characters")."""
    from hotline.service.labels import FIELD_LABELS  # labels marks its ids with N_ from here

    label = gettext(FIELD_LABELS[field]) if field in FIELD_LABELS else field
    return gettext("%(field)s: %(problem)s") % {"field": label, "problem": problem}


def N_(message: str) -> str:
    return message


def use_language(lang: str) -> None:
    _translations.set(catalogs()[lang])


# How a span of time is said, by its largest units (the console's clocks use these too).
DURATION_UNITS = {
    "dh": N_("%(d)d d %(h)d h"),
    "d": N_("%(d)d d"),
    "hm": N_("%(h)d h %(m)d min"),
    "h": N_("%(h)d h"),
    "m": N_("%(m)d min"),
    "lt": N_("under a minute"),  # never "0 min": a clock just past due, a quick answer
}


def duration(seconds: float, lang: str | None = None) -> str:
    """A span of time as people say it: "30 分钟", "2 小时 5 分钟", "3 天 4 小时" (never
    "1800 分钟"), "不到 1 分钟" (never "0 分钟"), in `lang`, or the language of the request
    being served."""
    say = gettext if lang is None else (lambda message: translate(lang, message))
    if seconds < 60:
        return say(DURATION_UNITS["lt"])
    minutes = max(0, round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    by_hours = ("hm" if mins else "h") if hours else "m"
    unit = ("dh" if hours else "d") if days else by_hours
    return say(DURATION_UNITS[unit]) % {"d": days, "h": hours, "m": mins}
