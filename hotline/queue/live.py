"""Live case updates for open consoles: one Redis subscription per process, fanned out to
every server-sent-events stream in memory. So open tabs cost no Redis connections, and the
number of streams is capped per member and in total (a burst of tabs cannot take intake down).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.queue.signals import each_case_event

log = logging.getLogger(__name__)

# Events a slow stream may fall behind by; older ones are dropped (it reloads). Room for a
# router batch's (200), which arrive at once.
QUEUE = 400


class TooManyStreams(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status  # 429: this member has enough; 503: the process has enough
        self.reason = reason


class LiveUpdates:
    def __init__(self, client: redis.Redis, *, per_member: int = 5, total: int = 200) -> None:
        self.redis = client
        self.per_member = per_member
        self.total = total
        self._streams: dict[asyncio.Queue[str], str] = {}

    def count(self, member_id: str | None = None) -> int:
        if member_id is None:
            return len(self._streams)
        return sum(1 for owner in self._streams.values() if owner == member_id)

    @contextlib.contextmanager
    def join(self, member_id: str) -> Iterator[asyncio.Queue[str]]:
        """A queue of case events for one stream, while the `with` block lasts."""
        if self.count(member_id) >= self.per_member:
            raise TooManyStreams(429, "too many live views open for this member")
        if self.count() >= self.total:
            raise TooManyStreams(503, "too many live views open on this server")
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        self._streams[queue] = member_id
        try:
            yield queue
        finally:
            del self._streams[queue]

    def _publish(self, data: str) -> None:
        for queue in self._streams:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(data)

    async def run(self, stop: asyncio.Event) -> None:
        """Relay the case-event channel until `stop`; resubscribe after Redis comes back."""
        while not stop.is_set():
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.CASE_EVENTS)
                while not stop.is_set():
                    message: Any = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.2
                    )
                    if message and message.get("type") == "message":
                        data = message["data"]
                        published = data.decode() if isinstance(data, bytes) else str(data)
                        for event in each_case_event(published):
                            self._publish(event)
            except Exception as exc:  # Redis down or refusing: the relay must outlive it
                log.warning("live updates: %r; resubscribing", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
            finally:
                with contextlib.suppress(*REDIS_DOWN):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
