"""One Redis Streams consumer-group loop, shared by the router and the sender.

At-least-once: an entry is acknowledged (and then deleted from the stream) only after its
handler returned. Each consumer renews a heartbeat key; entries held by a consumer whose
heartbeat has expired (killed, its machine gone) are reclaimed within seconds, and entries
idle longer than `claim_idle_ms` under a live consumer are reclaimed too. An entry whose
handler raises `Poison`, or fails `max_failures` times, goes to the dead-letter stream with
its reason, so one bad entry never blocks the rest. `run_burst` drains what is there and
returns (tests, benchmarks); `run` consumes until told to stop, finishing the batch in hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.signals import case_events
from hotline.service.store.database import unavailable as store_unavailable

log = logging.getLogger(__name__)

DEAD_CHECK = 2.0  # seconds between looks for consumers whose heartbeat is gone
Fields = dict[bytes, bytes]
Entry = tuple[bytes, Fields]


def _now_ms() -> int:
    return int(time.time() * 1000)


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Poison(Exception):
    """An entry that can never be handled (malformed, conflicting): dead-letter it at once."""


class NotYet(Exception):
    """An entry that cannot be handled yet (it follows one still on its way): retried without
    counting as a failure, and dead-lettered only once it is older than `wait_at_most_ms`."""


Outcome = list[str] | Poison | NotYet  # an entry's case events, or why it is not done


class StreamConsumer:
    """Subclasses set `stream`, `group` and `dead` and implement `process_batch`."""

    stream: str
    group: str
    dead: str

    def __init__(
        self,
        client: redis.Redis,
        *,
        consumer: str | None = None,
        batch: int = 50,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        max_failures: int = 5,
        heartbeat_ms: int = 6_000,
        wait_at_most_ms: int = 600_000,
    ) -> None:
        self.redis = client
        self.consumer = consumer or consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_failures = max_failures
        self.heartbeat_ms = heartbeat_ms  # a heartbeat lives this long; renewed every third
        self.wait_at_most_ms = wait_at_most_ms
        self._not_yet = 0  # entries of the current round that must wait (NotYet)
        self._beat_at = 0.0
        self._started: float | None = None  # loop time `run` began
        self.last_turn: float | None = None  # loop time of the latest turn of `run`

    @property
    def failures(self) -> str:
        return keys.failures(self.stream)

    async def process_batch(self, entries: list[Entry]) -> dict[bytes, Outcome]:
        """Handle the entries of one read: each one's case events (published once it is
        acknowledged), or the Poison or NotYet it met. An exception fails the batch, whose
        entries are then handled one by one (so one bad entry is found and counted alone)."""
        raise NotImplementedError

    async def process(self, entry_id: bytes, fields: Fields) -> list[str]:
        """Handle one entry, as a batch of one; raises its Poison or NotYet."""
        outcome = (await self.process_batch([(entry_id, fields)]))[entry_id]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def took(self, count: int) -> None:
        """A turn took `count` entries (subclasses may count them)."""

    async def idle(self) -> None:
        """Called between reads in `run`: room for periodic work."""

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, stream_id: str, block: int | None = None) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: stream_id}, count=self.batch, block=block
        )
        if not reply:
            return []
        return [entry for _, entries in reply for entry in entries if entry[1]]

    async def _claim(self) -> list[Entry]:
        """Entries delivered to some consumer that went quiet for longer than claim_idle_ms."""
        reply = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=self.batch,
        )
        claimed: list[Entry] = reply[1]
        # XAUTOCLAIM also reports (and drops from the PEL) entries deleted meanwhile.
        return [entry for entry in claimed if entry and entry[1]]

    async def _keep_beating(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(*REDIS_DOWN):  # the consumer loop reports Redis down
                await self.beat(force=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_ms / 3000)

    def stalled(self, now: float, limit: float) -> bool:
        """True when `run` has not turned for `limit` seconds (a stuck or dead loop)."""
        last = self.last_turn or self._started
        return last is not None and now - last > limit

    async def beat(self, force: bool = False) -> None:
        """Renew this consumer's heartbeat (at most every third of its life)."""
        now = asyncio.get_running_loop().time()
        if force or now - self._beat_at > self.heartbeat_ms / 3000:
            await self.redis.set(keys.alive(self.group, self.consumer), 1, px=self.heartbeat_ms)
            self._beat_at = now

    async def _claim_from_dead(self) -> list[Entry]:
        """Entries held by consumers whose heartbeat has expired, claimed at once. (Gone
        consumers stay listed in the group: removing one races with a slow consumer reading
        new entries, whose entries would then be in no pending list at all.)"""
        claimed: list[Entry] = []
        consumers: Any = await self.redis.xinfo_consumers(self.stream, self.group)
        for info in consumers:
            name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
            # Holding nothing first: gone consumers stay listed, and asking after each one's
            # heartbeat every two seconds would grow with every restart.
            if not info["pending"] or name == self.consumer:
                continue
            if await self.redis.exists(keys.alive(self.group, name)):
                continue
            held: Any = await self.redis.xpending_range(
                self.stream, self.group, "-", "+", self.batch, consumername=name
            )
            ids = [row["message_id"] for row in held]
            if ids:
                entries: Any = await self.redis.xclaim(
                    self.stream, self.group, self.consumer, self.heartbeat_ms, ids
                )
                claimed.extend(e for e in entries if e and e[1])
                log.warning("reclaimed %d %s entries from %s (heartbeat gone)",
                            len(ids), self.stream, name)  # fmt: skip
            if len(claimed) >= self.batch:
                break
        return claimed

    async def dead_letter(self, entry_id: bytes, fields: Fields, reason: str) -> None:
        log.error("dead-lettering %s entry %s: %s", self.stream, entry_id.decode(), reason)
        async with self.redis.pipeline(transaction=True) as pipe:
            # The entry's own fields as they were (an outbound entry's "id" is its outbox
            # row), with where it stood in its stream and why it was set aside.
            dead: dict[Any, Any] = {**fields, b"entry": entry_id, b"reason": reason.encode()}
            pipe.xadd(self.dead, dead)
            pipe.xack(self.stream, self.group, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.hdel(self.failures, entry_id)
            await pipe.execute()

    async def handle(self, entry_id: bytes, fields: Fields) -> bool:
        """Process one entry; True when it is done with (handled or dead-lettered)."""
        outcome: Outcome
        try:
            outcome = await self.process(entry_id, fields)
        except (Poison, NotYet) as exc:
            outcome = exc
        except REDIS_DOWN:
            raise
        except Exception as exc:
            if store_unavailable(exc):  # not the entry's fault: it waits, uncounted
                raise
            failures = await self.redis.hincrby(self.failures, entry_id, 1)
            if failures >= self.max_failures:
                await self.dead_letter(entry_id, fields, f"failed {failures} times: {exc!r}")
                return True
            log.exception("%s entry %s failed (attempt %d); it will be retried",
                          self.stream, entry_id.decode(), failures)  # fmt: skip
            return False
        done, _ = await self._settle([(entry_id, fields)], {entry_id: outcome})
        return done == 1

    async def _settle(
        self, entries: list[Entry], outcomes: dict[bytes, Outcome]
    ) -> tuple[int, int]:
        """Act on what became of each entry: acknowledge (and delete) the handled ones in
        one round trip, publishing their case events; dead-letter poison; leave entries that
        must wait pending. Returns (done, not done)."""
        handled: list[bytes] = []
        events: list[str] = []
        done = 0
        for entry_id, fields in entries:
            outcome = outcomes[entry_id]
            if isinstance(outcome, Poison):
                await self.dead_letter(entry_id, fields, str(outcome))
                done += 1
            elif isinstance(outcome, NotYet):
                self._not_yet += 1
                age_ms = _now_ms() - int(entry_id.split(b"-")[0])
                if age_ms > self.wait_at_most_ms:
                    await self.dead_letter(entry_id, fields, f"waited {age_ms} ms: {outcome}")
                    done += 1
            else:
                handled.append(entry_id)
                events.extend(outcome)
        if handled:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, *handled)
                pipe.xdel(self.stream, *handled)  # handled: the stream need not keep them
                pipe.hdel(self.failures, *handled)
                if events:
                    pipe.publish(keys.CASE_EVENTS, case_events(events))
                await pipe.execute()
        done += len(handled)
        return done, len(entries) - done

    async def _handle_all(self, entries: list[Entry]) -> tuple[int, int]:
        if not entries:
            return 0, 0
        self.took(len(entries))
        if len(entries) > 1:
            try:
                return await self._settle(entries, await self.process_batch(entries))
            except REDIS_DOWN:
                raise
            except Exception as exc:
                if store_unavailable(exc):  # the database down: no entry's fault
                    raise
                # One bad entry must not hold up the rest: one at a time finds it.
                log.exception("%s: a batch of %d failed; handling its entries one by one",
                              self.stream, len(entries))  # fmt: skip
        done = failed = 0
        for entry_id, fields in entries:
            if await self.handle(entry_id, fields):
                done += 1
            else:
                failed += 1
        return done, failed

    async def run_burst(self) -> int:
        """Drain everything there now (own pending, stuck, new); returns how many were done."""
        await self.ensure_group()
        await self.beat(force=True)
        total = 0
        while True:
            entries = (
                await self._read("0")
                or await self._claim_from_dead()
                or await self._claim()
                or await self._read(">")
            )
            if not entries:
                return total
            self._not_yet = 0
            done, failed = await self._handle_all(entries)
            total += done
            if not done and failed == self._not_yet:
                return total  # only entries that must wait: a burst does not spin on them

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set; the batch in hand is finished before returning."""
        retry_own = True
        last_claim = last_dead_check = 0.0
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        # Beating in a task of its own: a long batch (or a slow provider) never lets the
        # heartbeat lapse, so live work is not reclaimed from under us.
        beating = asyncio.create_task(self._keep_beating(stop), name=f"{self.group}-heartbeat")
        while not stop.is_set():
            self.last_turn = loop.time()
            try:
                await self.ensure_group()
                entries: list[Entry] = []
                if retry_own:
                    entries = await self._read("0")
                    retry_own = bool(entries)
                if not entries and loop.time() - last_dead_check > DEAD_CHECK:
                    last_dead_check = loop.time()
                    entries = await self._claim_from_dead()
                if not entries and loop.time() - last_claim > self.claim_idle_ms / 2000:
                    last_claim = loop.time()
                    entries = await self._claim()
                if not entries:
                    entries = await self._read(">", block=self.block_ms)
                _, failed = await self._handle_all(entries)
                await self.idle()
                if failed:
                    retry_own = True
                    await asyncio.sleep(1)  # back off before retrying our own pending entries
            except REDIS_DOWN as exc:
                log.warning("%s consumer: redis unavailable (%s); retrying", self.group, exc)
                retry_own = True
                await asyncio.sleep(1)
            except Exception as exc:
                if store_unavailable(exc):
                    # Entries stay pending, their failures uncounted: a database restarting,
                    # failing over or out of disk sets no request aside as poison.
                    log.warning("%s consumer: database unavailable (%r); retrying",
                                self.group, exc)  # fmt: skip
                    retry_own = True
                    await asyncio.sleep(1)
                    continue
                # A bug must not silently stop the consumer for everyone: log it and go on.
                log.exception("%s consumer: unexpected error; continuing", self.group)
                retry_own = True
                await asyncio.sleep(1)
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        # Stopped: whatever we still hold (entries that failed) goes to others at once.
        with contextlib.suppress(*REDIS_DOWN):
            await self.redis.delete(keys.alive(self.group, self.consumer))
