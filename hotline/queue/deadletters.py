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
# What the consumer adds to an entry it sets aside (consumer.dead_letter), not put back:
# its id in its stream ("entry"; "id" before, which overwrote an outbound entry's own "id",
# its outbox row) and the reason.
_ADDED = (b"entry", b"reason")
_ADDED_BEFORE = (b"id", b"reason")
# One entry back, atomically: read it, append its own fields to the stream, delete it.
# KEYS: the dead letters, the stream; ARGV: the dead letter's id. Returns the new id;
# 0 when there is no such dead letter (put back meanwhile, or never there); -1 when none
# of its own fields is left (an outbound one set aside before "entry": it stays).
_PUT_BACK = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local given = found[1][2]
local added = 'id'
for i = 1, #given, 2 do
  if given[i] == 'entry' then added = 'entry' end
end
local fields = {}
for i = 1, #given, 2 do
  if given[i] ~= added and given[i] ~= 'reason' then
    fields[#fields + 1] = given[i]
    fields[#fields + 1] = given[i + 1]
  end
end
if #fields == 0 then return -1 end
local new = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return new
"""
NOT_FOUND, NOTHING_LEFT = "no such dead letter", "none of its own fields is left"


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
            added = _ADDED if b"entry" in fields else _ADDED_BEFORE
            shown = {_text(k): _text(v) for k, v in fields.items() if k not in (*added, b"intake")}
            found.append(
                DeadLetter(
                    name,
                    _text(entry_id),
                    _text(fields.get(added[0], b"")),
                    _text(fields.get(b"reason", b"")),
                    shown,
                )
            )
    return found


async def put_back(client: redis.Redis, stream: str, entry_id: str) -> tuple[bool, str]:
    """Put a dead letter of `stream` back at its end: (True, its new id), or (False, why
    not: NOT_FOUND, NOTHING_LEFT)."""
    live, dead = STREAMS[stream]
    new = await client.register_script(_PUT_BACK)(keys=[dead, live], args=[entry_id])
    if isinstance(new, int):
        return False, NOT_FOUND if new == 0 else NOTHING_LEFT
    return True, _text(new)
