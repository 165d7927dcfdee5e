"""The service's signals on Redis: pub/sub for live case updates, the outbound stream's wake-up
entries, and version counters that tell every process to reload shared state."""

from __future__ import annotations

import json
import logging

import redis.asyncio as redis

from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.ports import Versioned

log = logging.getLogger(__name__)

_VERSIONS: dict[Versioned, str] = {
    "duty": keys.DUTY_VERSION,
    "directory": keys.DIRECTORY_VERSION,
}


# An outbound entry that wakes the sender for webhook deliveries (the rows say which).
WEBHOOKS = "webhooks"


def case_event(code: str, kind: str) -> str:
    """The one shape of a case-change message, {"code", "kind"}, on keys.CASE_EVENTS."""
    return json.dumps({"code": code, "kind": kind})


def case_events(events: list[str]) -> str:
    """Case-change messages published as one (a router batch's): a JSON list of them. One
    PUBLISH per case was a tenth of the router's Redis work."""
    return events[0] if len(events) == 1 else "[" + ",".join(events) + "]"


def each_case_event(published: str) -> list[str]:
    """The case-change messages in what `case_events` published (none if it is garbled)."""
    if not published.startswith("["):
        return [published]
    try:
        events = json.loads(published)
    except ValueError:
        log.warning("a garbled list of case events on the channel: %.80r", published)
        return []
    return [json.dumps(event) for event in events] if isinstance(events, list) else []


class RedisSignals:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    async def case_changed(self, code: str, kind: str) -> None:
        try:
            await self.redis.publish(keys.CASE_EVENTS, case_event(code, kind))
        except REDIS_DOWN as exc:
            log.warning("live update for %s not sent (%s)", code, exc)

    async def outbound_queued(self, item_id: int) -> None:
        try:
            await self.redis.xadd(keys.OUTBOUND_STREAM, {"id": str(item_id)})
        except REDIS_DOWN as exc:  # the row stays queued: the sender's sweep finds it
            log.warning("outbox %d queued without a stream entry (%s)", item_id, exc)

    async def webhooks_due(self) -> None:
        try:
            await self.redis.xadd(keys.OUTBOUND_STREAM, {WEBHOOKS: "1"})
        except REDIS_DOWN as exc:  # the rows stay due: the sender's sweep finds them
            log.warning("webhook deliveries queued without a stream entry (%s)", exc)

    async def version(self, name: Versioned) -> int | None:
        try:
            value = await self.redis.get(_VERSIONS[name])
        except REDIS_DOWN:
            return None
        return int(value or 0)

    async def bump(self, name: Versioned) -> None:
        try:
            await self.redis.incr(_VERSIONS[name])
        except REDIS_DOWN:
            log.warning("%s changed but Redis is unreachable: other processes reload later", name)
