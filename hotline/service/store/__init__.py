"""The store: the only code that holds SQL. `Store.open` opens (and migrates) the database,
SQLite or PostgreSQL, and holds one repository per kind of record; domain code composes them,
and runs several steps in one transaction through `write` with the repositories'
`..._in(db, ...)` functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from hotline.service.store.accounts import AccountRepo
from hotline.service.store.caselists import CaseListRepo
from hotline.service.store.cases import CaseRepo
from hotline.service.store.database import Conn, Database, Params, Row, sqlite_url
from hotline.service.store.directory import DirectoryRepo
from hotline.service.store.duty import DutyRepo
from hotline.service.store.kiosks import KioskRepo
from hotline.service.store.outbox import OutboxRepo
from hotline.service.store.receptions import ReceptionRepo
from hotline.service.store.replies import ReplyRepo
from hotline.service.store.reports import ReportRepo
from hotline.service.store.scheduler import SchedulerRepo
from hotline.service.store.tokens import TokenRepo
from hotline.service.store.webhooks import WebhookRepo

T = TypeVar("T")


class Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.cases = CaseRepo(db)
        self.lists = CaseListRepo(db)
        self.outbox = OutboxRepo(db)
        self.accounts = AccountRepo(db)
        self.duty = DutyRepo(db)
        self.directory = DirectoryRepo(db)
        self.kiosks = KioskRepo(db)
        self.replies = ReplyRepo(db)
        self.reports = ReportRepo(db)
        self.tokens = TokenRepo(db)
        self.webhooks = WebhookRepo(db)
        self.receptions = ReceptionRepo(db)
        self.scheduler = SchedulerRepo(db)

    @classmethod
    async def open(cls, target: str | Path) -> Store:
        """Open a database URL (`sqlite:///...`, `postgresql://...`) or a SQLite file."""
        url = sqlite_url(target) if isinstance(target, Path) else target
        return cls(await Database.open(url))

    async def close(self) -> None:
        await self.db.close()

    async def write(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Several repository steps in one write transaction."""
        return await self.db.write(fn)

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        """A read-only query: for tests and tools that inspect the database."""
        return await self.db.fetch(sql, params)
