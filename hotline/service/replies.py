"""Canned replies: texts heads keep ready, so members answer common requests the same way."""

from __future__ import annotations

from datetime import datetime

from hotline.service.cases import to_utc_text
from hotline.service.store.replies import CannedReply, ReplyRepo


class CannedReplies:
    def __init__(self, repo: ReplyRepo) -> None:
        self.repo = repo

    async def all(self) -> list[CannedReply]:
        return await self.repo.all()

    async def save(
        self,
        title: str | None,
        body: str | None,
        actor: str,
        now: datetime,
        *,
        change: int | None = None,
        delete: bool = False,
    ) -> bool:
        """Add a reply, change reply `change`, or delete it (`delete`); False when the reply
        to change or delete is gone (someone deleted it meanwhile)."""
        at = to_utc_text(now)
        if delete and change is not None:
            return await self.repo.delete(change)
        if title is None or body is None:
            raise ValueError("a canned reply needs a title and a body")
        if change is not None:
            return await self.repo.change(change, title, body, actor, at)
        await self.repo.add(title, body, actor, at)
        return True
