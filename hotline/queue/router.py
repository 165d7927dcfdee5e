"""Router consumer: stores intakes as cases, assigned, with their texts, then acknowledges.

It works in batches: the entries of one read are routed under one policy (directory and duty
schedule read once), stored in one database transaction (cases, events, first messages and
outbox rows), their outbound entries pushed in one pipeline, and all acknowledged in one
more. At-least-once (see consumer.py): the store is idempotent on the intake key, so a
redelivery is harmless; a code taken by another intake is poison, dead-lettered alone. A
batch that fails whole is retried one entry at a time, which finds the bad one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.consumer import Entry, Fields, NotYet, Outcome, Poison, StreamConsumer
from hotline.queue.signals import WEBHOOKS, case_event
from hotline.service.caselists import due_times
from hotline.service.cases import Case, Intake
from hotline.service.metrics import Metrics
from hotline.service.routing import HELD, RoutingPolicy
from hotline.service.store.cases import CaseNotStored, NewCase, Stored
from hotline.service.store.outbox import Draft

log = logging.getLogger(__name__)


class CaseWriter(Protocol):
    """What the router needs of the store's cases."""

    async def create_many(
        self, new: Sequence[NewCase], now: datetime
    ) -> tuple[list[Stored], list[int]]: ...

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]: ...


class CaseNotifier(Protocol):
    """Who hears about routed cases (members and submitters by SMS, through the outbox)."""

    def new_case_drafts(
        self,
        code: str,
        intake: Intake,
        assignee_id: str | None,
        copy: tuple[str, ...],
        *,
        held: bool = False,
    ) -> tuple[Draft, ...]: ...

    async def follow_up(self, case: Case, intake: Intake) -> None: ...


def _parse(fields: Fields) -> tuple[str, Intake, bool]:
    """(code, intake, is a follow-up message) of an entry; Poison when malformed."""
    try:
        code = fields[b"code"].decode()
        intake = Intake.from_json(fields[b"intake"].decode())
    except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Poison(f"malformed entry: {exc!r}") from exc
    return code, intake, fields.get(b"kind", b"case") == b"message"


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
        options.setdefault("batch", 200)
        super().__init__(client, **options)
        self.store = store
        self.routing = routing
        self.clock = clock
        self.notifier = notifier
        self.metrics: Metrics | None = None

    def took(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.router_batch.observe(count)

    async def process_batch(self, entries: list[Entry]) -> dict[bytes, Outcome]:
        outcomes: dict[bytes, Outcome] = {}
        new: list[tuple[bytes, str, Intake]] = []
        follow_ups: list[tuple[bytes, str, Intake]] = []
        for entry_id, fields in entries:
            try:
                code, intake, follow_up = _parse(fields)
            except Poison as exc:
                outcomes[entry_id] = exc
                continue
            (follow_ups if follow_up else new).append((entry_id, code, intake))
        if new:
            outcomes.update(await self._create_cases(new))
        # After the batch's new cases: a follow-up comes after its case in the stream.
        for entry_id, code, intake in follow_ups:
            try:
                added = await self._add_message(code, intake)
            except CaseNotStored as exc:  # its case is further up the stream, or reclaimed
                outcomes[entry_id] = NotYet(str(exc))
                continue
            outcomes[entry_id] = [case_event(code, "message")] if added else []
        return outcomes

    async def _create_cases(self, new: list[tuple[bytes, str, Intake]]) -> dict[bytes, Outcome]:
        policy = await self.routing()  # once per batch: directory and duty schedule
        routed = []
        began_at = self.clock()
        for _, code, intake in new:
            assignment = policy.assign(intake)
            # Held for a shift that has begun by now (stored late: after the shift's summary
            # was sent, or after an outage): its member is told now, as for any new case.
            held = assignment.reason == HELD and (
                assignment.due is None or assignment.due > began_at
            )
            drafts = (
                self.notifier.new_case_drafts(
                    code, intake, assignment.member_id, assignment.copy, held=held
                )
                if self.notifier is not None
                else ()
            )  # fmt: skip
            targets = due_times(policy.config, intake.category, intake.received_at, assignment.due)
            routed.append(
                NewCase(code, intake, assignment.member_id, assignment.reason, assignment.due,
                        assignment.copy, drafts, targets)
            )  # fmt: skip
        now = self.clock()
        began = time.perf_counter()
        stored, queued = await self.store.create_many(routed, now)
        if self.metrics is not None:
            self.metrics.router_store.observe(time.perf_counter() - began)
        # After the commit. One outbound entry names the batch's texts (one per text cost
        # the router and the sender a tenth of their time); lost, it leaves its rows queued:
        # the sender's sweep finds them.
        # Stored codes leave the unrouted hash (the store answers for them now). An intake
        # stored before under another code (a retry older than the idempotency window) gets
        # its new code pointed at the case.
        routed_codes = [n.code for n, r in zip(routed, stored, strict=True) if r.case_id]
        aliases = {
            n.code: r.code
            for n, r in zip(routed, stored, strict=True)
            if r.case_id and r.code and r.code != n.code
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            if queued:
                pipe.xadd(keys.OUTBOUND_STREAM, {"ids": ",".join(map(str, queued))})
            if aliases:
                pipe.hset(keys.CODE_ALIASES, mapping=aliases)  # type: ignore[arg-type]
            if routed_codes:
                pipe.hdel(keys.UNROUTED_CODES, *routed_codes)
            if any(r.offered for r in stored):  # first events due to partners' webhooks
                pipe.xadd(keys.OUTBOUND_STREAM, {WEBHOOKS: "1"})
            await pipe.execute()
        for code, case_code in aliases.items():
            log.warning("intake with code %s was stored before as %s; %s now leads there",
                        code, case_code, code)  # fmt: skip
        made = sum(r.created for r in stored)
        if made:
            log.info("stored %d new case(s), %d text(s) queued", made, len(queued))
        outcomes: dict[bytes, Outcome] = {}
        committed = self.clock()
        for (entry_id, code, intake), case, result in zip(new, routed, stored, strict=True):
            if result.case_id is None:
                outcomes[entry_id] = Poison(f"case code {code} is taken by another intake")
                continue
            outcomes[entry_id] = [case_event(code, "created")] if result.created else []
            if result.created:
                log.debug("case %s from %s assigned to %s", code, intake.channel, case.assignee_id)
                if self.metrics is not None:
                    waited = (committed - intake.received_at).total_seconds()
                    self.metrics.receipt_to_stored.observe(max(waited, 0.0))
        return outcomes

    async def _add_message(self, code: str, intake: Intake) -> bool:
        case, added = await self.store.add_message(code, intake, self.clock())
        if self.notifier is not None:
            await self.notifier.follow_up(case, intake)
        return added
