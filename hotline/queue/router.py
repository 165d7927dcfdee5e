"""Router consumer: stores each intake as a case, assigns it, then acknowledges the entry.

At-least-once (see consumer.py): the store is idempotent on the intake key, so a redelivery
is harmless; a code taken by another intake is poison, dead-lettered at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.consumer import Fields, NotYet, Poison, StreamConsumer
from hotline.queue.signals import case_event
from hotline.service.cases import Case, Intake
from hotline.service.metrics import Metrics
from hotline.service.routing import RoutingPolicy
from hotline.service.store.cases import CaseNotStored, CodeConflict

log = logging.getLogger(__name__)


class CaseWriter(Protocol):
    """What the router needs of the store's cases."""

    async def create(
        self,
        code: str,
        intake: Intake,
        assignee_id: str | None,
        reason: str,
        now: datetime,
        due: datetime | None = None,
        copy: tuple[str, ...] = (),
    ) -> tuple[int, bool]: ...

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]: ...

    async def by_code(self, code: str) -> Case | None: ...


class CaseNotifier(Protocol):
    """Who hears about routed cases (members by SMS, through the outbox)."""

    async def case_assigned(self, case: Case, copy_to: str | None = None) -> None: ...

    async def follow_up(self, case: Case, intake: Intake) -> None: ...

    async def submitter_notice(self, case: Case, step: str) -> None: ...


class RouterConsumer(StreamConsumer):
    stream = keys.INTAKE_STREAM
    group = keys.ROUTER_GROUP
    dead = keys.INTAKE_DEAD

    def __init__(
        self,
        client: redis.Redis,
        store: CaseWriter,
        routing: Callable[[], Awaitable[RoutingPolicy]],
        clock: Callable[[], datetime],
        *,
        notifier: CaseNotifier | None = None,
        **options: Any,
    ) -> None:
        super().__init__(client, **options)
        self.store = store
        self.routing = routing
        self.clock = clock
        self.notifier = notifier
        self.metrics: Metrics | None = None

    def took(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.router_batch.observe(count)

    async def process(self, entry_id: bytes, fields: Fields) -> list[str]:
        try:
            code = fields[b"code"].decode()
            intake = Intake.from_json(fields[b"intake"].decode())
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise Poison(f"malformed entry: {exc!r}") from exc
        try:
            if fields.get(b"kind", b"case") == b"message":
                added = await self._add_message(code, intake)
                return [case_event(code, "message")] if added else []
            created = await self._create_case(code, intake)
            return [case_event(code, "created")] if created else []
        except CodeConflict as exc:
            raise Poison(str(exc)) from exc
        except CaseNotStored as exc:  # its case is further up the stream, or being reclaimed
            raise NotYet(str(exc)) from exc

    async def _create_case(self, code: str, intake: Intake) -> bool:
        began = time.perf_counter()
        created = await self._route(code, intake)
        if self.metrics is not None:
            self.metrics.router_store.observe(time.perf_counter() - began)
            if created:
                waited = (self.clock() - intake.received_at).total_seconds()
                self.metrics.receipt_to_stored.observe(max(waited, 0.0))
        return created

    async def _route(self, code: str, intake: Intake) -> bool:
        assignment = (await self.routing()).assign(intake)
        _, created = await self.store.create(
            code,
            intake,
            assignment.member_id,
            assignment.reason,
            self.clock(),
            assignment.due,
            assignment.copy,
        )
        if created:
            log.info("case %s from %s assigned to %s", code, intake.channel, assignment.member_id)
        if self.notifier is not None:
            # Also on a redelivery: the outbox sends each notice once, whatever the retries.
            case = await self.store.by_code(code)
            if case is not None:
                await self.notifier.case_assigned(case)
                for member_id in assignment.copy:
                    await self.notifier.case_assigned(case, copy_to=member_id)
                if case.status == "assigned":
                    await self.notifier.submitter_notice(case, "assigned")
        return created

    async def _add_message(self, code: str, intake: Intake) -> bool:
        case, added = await self.store.add_message(code, intake, self.clock())
        if self.notifier is not None:
            await self.notifier.follow_up(case, intake)
        return added
