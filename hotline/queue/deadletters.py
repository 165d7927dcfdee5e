"""The dead-letter streams: entries the router or the sender set aside after they failed
(poison, or `max_failures` tries: queue/consumer.py), listed with their reasons and put back
on their stream once the cause is fixed. Putting back is safe: the router stores a case once
per intake key, and the sender hands an outbox row over once whatever its entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from hotline.queue import keys

# name -> (the stream, its dead letters)
STREAMS = {
    "intake": (keys.INTAKE_STREAM, keys.INTAKE_DEAD),
    "outbound": (keys.OUTBOUND_STREAM, keys.OUTBOUND_DEAD),
}
# What the consumer adds to an entry it sets aside (consumer.dead_letter): not put back.
_ADDED = (b"id", b"reason")
# One entry back, atomically: read it, append its own fields to the stream, delete it.
# KEYS: the dead letters, the stream; ARGV: the dead letter's id. Returns the new id, or
# false when there is no such dead letter (put back meanwhile, or never there).
_PUT_BACK = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return false end
local fields = {}
local given = found[1][2]
for i = 1, #given, 2 do
  if given[i] ~= 'id' and given[i] ~= 'reason' then
    fields[#fields + 1] = given[i]
    fields[#fields + 1] = given[i + 1]
  end
end
local new = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return new
"""


@dataclass(frozen=True)
class DeadLetter:
    stream: str  # "intake" or "outbound"
    id: str  # in the dead-letter stream
    original: str  # the entry's id in its own stream
    reason: str
    fields: dict[str, str]  # the entry as it was (an intake's JSON left out: its text)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


async def dead_letters(client: redis.Redis, stream: str | None = None) -> list[DeadLetter]:
    """Every dead letter (of one stream, or of both), oldest first."""
    found = []
    for name, (_, dead) in STREAMS.items():
        if stream not in (None, name):
            continue
        entries: Any = await client.xrange(dead)
        for entry_id, fields in entries:
            shown = {_text(k): _text(v) for k, v in fields.items() if k not in (*_ADDED, b"intake")}
            found.append(
                DeadLetter(
                    name,
                    _text(entry_id),
                    _text(fields.get(b"id", b"")),
                    _text(fields.get(b"reason", b"")),
                    shown,
                )
            )
    return found


async def put_back(client: redis.Redis, stream: str, ids: list[str]) -> dict[str, str | None]:
    """Put these dead letters of `stream` back on it, each at its end: dead letter id -> its
    new id, or None when there was no such dead letter."""
    live, dead = STREAMS[stream]
    script = client.register_script(_PUT_BACK)
    moved: dict[str, str | None] = {}
    for entry_id in ids:
        new = await script(keys=[dead, live], args=[entry_id])
        moved[entry_id] = _text(new) if new else None
    return moved
