"""Router consumer: stores each intake as a case, assigns it, then acknowledges the entry.

At-least-once: an entry is acknowledged (and only then deleted from the stream) after the
case is committed; the store is idempotent on the intake key, so a redelivery is harmless.
Entries stuck with a dead consumer are reclaimed; ones that keep failing are dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import ResponseError

from hotline.queue import keys
from hotline.queue.intake import REDIS_DOWN
from hotline.service.cases import Intake
from hotline.service.routing import RoutingPolicy
from hotline.service.store import Case, CodeConflict

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]
FAILURES = keys.PREFIX + "intake:failures"


class CaseWriter(Protocol):
    """What the router needs of the store."""

    async def create_case(
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

    async def case_by_code(self, code: str) -> Case | None: ...


class CaseNotifier(Protocol):
    """Who hears about routed cases (members by SMS, through the outbox)."""

    async def case_assigned(self, case: Case, copy_to: str | None = None) -> None: ...

    async def follow_up(self, case: Case, intake: Intake) -> None: ...

    async def submitter_notice(self, case: Case, step: str) -> None: ...


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RouterConsumer:
    def __init__(
        self,
        client: redis.Redis,
        store: CaseWriter,
        routing: Callable[[], Awaitable[RoutingPolicy]],
        clock: Callable[[], datetime],
        *,
        notifier: CaseNotifier | None = None,
        consumer: str | None = None,
        batch: int = 50,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        max_failures: int = 5,
    ) -> None:
        self.redis = client
        self.store = store
        self.routing = routing
        self.clock = clock
        self.notifier = notifier
        self.consumer = consumer or consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(
                keys.INTAKE_STREAM, keys.ROUTER_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, stream_id: str, block: int | None = None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            keys.ROUTER_GROUP,
            self.consumer,
            {keys.INTAKE_STREAM: stream_id},
            count=self.batch,
            block=block,
        )
        if not reply:
            return []
        return [entry for _, entries in reply for entry in entries if entry[1]]

    async def _claim(self) -> list[Entry]:
        """Entries delivered to some consumer that went quiet for longer than claim_idle_ms."""
        reply = await self.redis.xautoclaim(
            keys.INTAKE_STREAM,
            keys.ROUTER_GROUP,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.batch,
        )
        claimed: list[Entry] = reply[1]
        # XAUTOCLAIM also reports (and drops from the PEL) entries deleted meanwhile.
        return [entry for entry in claimed if entry and entry[1]]

    async def _dead_letter(self, entry_id: bytes, fields: dict[bytes, bytes], reason: str) -> None:
        log.error("dead-lettering intake entry %s: %s", entry_id.decode(), reason)
        async with self.redis.pipeline(transaction=True) as pipe:
            dead: dict[Any, Any] = {**fields, b"id": entry_id, b"reason": reason.encode()}
            pipe.xadd(keys.INTAKE_DEAD, dead)
            pipe.xack(keys.INTAKE_STREAM, keys.ROUTER_GROUP, entry_id)
            pipe.xdel(keys.INTAKE_STREAM, entry_id)
            pipe.hdel(FAILURES, entry_id)
            await pipe.execute()

    async def handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> bool:
        """Process one entry; True when it is done with (stored or dead-lettered)."""
        try:
            code = fields[b"code"].decode()
            intake = Intake.from_json(fields[b"intake"].decode())
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
            await self._dead_letter(entry_id, fields, f"malformed entry: {exc!r}")
            return True
        kind = fields.get(b"kind", b"case")
        try:
            if kind == b"message":
                created = await self._add_message(code, intake)
            else:
                created = await self._create_case(code, intake)
        except CodeConflict as exc:
            await self._dead_letter(entry_id, fields, str(exc))
            return True
        except Exception as exc:
            failures = await self.redis.hincrby(FAILURES, entry_id, 1)
            if failures >= self.max_failures:
                await self._dead_letter(entry_id, fields, f"failed {failures} times: {exc!r}")
                return True
            log.exception("routing %s failed (attempt %d); it will be retried", code, failures)
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(keys.INTAKE_STREAM, keys.ROUTER_GROUP, entry_id)
            pipe.xdel(keys.INTAKE_STREAM, entry_id)  # stored: the stream need not keep it
            pipe.hdel(FAILURES, entry_id)
            if created:
                event = "message" if kind == b"message" else "created"
                pipe.publish(keys.CASE_EVENTS, json.dumps({"code": code, "kind": event}))
            await pipe.execute()
        return True

    async def _create_case(self, code: str, intake: Intake) -> bool:
        assignment = (await self.routing()).assign(intake)
        _, created = await self.store.create_case(
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
            case = await self.store.case_by_code(code)
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

    async def _handle_all(self, entries: list[Entry]) -> tuple[int, int]:
        done = failed = 0
        for entry_id, fields in entries:
            if await self.handle(entry_id, fields):
                done += 1
            else:
                failed += 1
        return done, failed

    async def run_burst(self) -> int:
        """Drain everything routable now (own pending, stuck, new) and return the count."""
        await self.ensure_group()
        total = 0
        while True:
            entries = await self._read("0") or await self._claim() or await self._read(">")
            if not entries:
                return total
            done, _ = await self._handle_all(entries)
            total += done

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished before returning."""
        retry_own = True
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await self.ensure_group()
                entries: list[Entry] = []
                if retry_own:
                    entries = await self._read("0")
                    retry_own = bool(entries)
                if not entries and loop.time() - last_claim > self.claim_idle_ms / 2000:
                    last_claim = loop.time()
                    entries = await self._claim()
                if not entries:
                    entries = await self._read(">", block=self.block_ms)
                _, failed = await self._handle_all(entries)
                if failed:
                    retry_own = True
                    await asyncio.sleep(1)  # back off before retrying our own pending entries
            except REDIS_DOWN as exc:
                log.warning("router: redis unavailable (%s); retrying", exc)
                await asyncio.sleep(1)
            except Exception:
                # A bug must not silently stop routing for everyone: log it and go on.
                log.exception("router: unexpected error; continuing")
                await asyncio.sleep(1)
