"""Texts to members about their cases: composed here, sent through the outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import redis.asyncio as redis

from hotline.queue.sender import enqueue
from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.outbox import Outbox
from hotline.service.store import Case
from hotline.web.i18n import N_, translate

SNIPPET = 40


def snippet(text: str, length: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1] + "…"


class Notifier:
    def __init__(
        self,
        client: redis.Redis,
        outbox: Outbox,
        config: Callable[[], PointConfig],
        public_url: str | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.redis = client
        self.outbox = outbox
        self.config = config
        self.public_url = public_url
        self.clock = clock

    def _console_link(self, code: str) -> str:
        return f" {self.public_url}/console/cases/{code}" if self.public_url else ""

    def _category(self, code: str | None, lang: str) -> str:
        category = self.config().category(code) if code else None
        return category.name(lang) if category else translate(lang, N_("no topic"))

    async def case_assigned(self, case: Case) -> None:
        """Tell the assignee about a new case (once per case and member)."""
        config = self.config()
        member = config.member(case.assignee_id) if case.assignee_id else None
        if member is None or not member.phone:
            return
        lang = config.point.language
        text = translate(lang, N_("New request %(code)s (%(category)s): %(text)s")) % {
            "code": case.code,
            "category": self._category(case.category, lang),
            "text": snippet(case.text) or translate(lang, N_("(picture message)")),
        }
        await enqueue(
            self.redis,
            self.outbox,
            f"assigned:{case.id}:{member.id}",
            member.phone,
            text + self._console_link(case.code),
            self.clock(),
            case_id=case.id,
            member_id=member.id,
        )

    async def follow_up(self, case: Case, intake: Intake) -> None:
        """Tell the assignee the submitter wrote again on an open case."""
        config = self.config()
        member = config.member(case.assignee_id) if case.assignee_id else None
        if member is None or not member.phone:
            return
        lang = config.point.language
        text = translate(lang, N_("New message on request %(code)s: %(text)s")) % {
            "code": case.code,
            "text": snippet(intake.text) or translate(lang, N_("(picture message)")),
        }
        await enqueue(
            self.redis,
            self.outbox,
            f"message:{intake.key}:{member.id}",
            member.phone,
            text + self._console_link(case.code),
            self.clock(),
            case_id=case.id,
            member_id=member.id,
        )
