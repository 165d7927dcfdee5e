"""Links we hand out (in texts, on slips and posters): the public base URL plus a path that
DESIGN.md fixes. Built here only, so every link points at the same place."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.service.i18n import N_, translate


@dataclass(frozen=True)
class Links:
    base: str  # e.g. "https://hotline.example.org", no trailing slash; "" gives relative links

    def track(self, code: str) -> str:
        return f"{self.base}/track/{code}"

    def follow(self, code: str, lang: str) -> str:
        """Where a text tells the submitter to follow a request: the status page's full
        address, or, with no public address configured (HOTLINE_PUBLIC_URL), the keyword
        to text: never a bare /track/... that no phone can open."""
        if self.base:
            return self.track(code)
        return translate(lang, N_("reply STATUS %(code)s")) % {"code": code}

    def reception(self, reception_id: int) -> str:
        """A reception's public page, or "" with no public address (a text then says
        where and when instead)."""
        return f"{self.base}/receptions/{reception_id}" if self.base else ""

    def console_case(self, code: str) -> str:
        return f"{self.base}/console/cases/{code}"
