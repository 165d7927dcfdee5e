"""Links we hand out (in texts, on slips and posters): the public base URL plus a path that
DESIGN.md fixes. Built here only, so every link points at the same place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Links:
    base: str  # e.g. "https://hotline.example.org", no trailing slash; "" gives relative links

    def track(self, code: str) -> str:
        return f"{self.base}/track/{code}"

    def console_case(self, code: str) -> str:
        return f"{self.base}/console/cases/{code}"
