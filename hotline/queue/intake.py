"""Intake producer: reserve a case code and append the intake to the stream, atomically.

The submitter is told "received" only once Redis has the entry, or, if Redis cannot be
reached, once the entry is on disk in the spool; the spool is pushed to Redis later.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from hotline.queue import keys
from hotline.queue.errors import REDIS_DOWN
from hotline.service.cases import Intake, code_for, to_utc_text
from hotline.service.metrics import Metrics
from hotline.service.ports import Submitted

log = logging.getLogger(__name__)

# One round trip, atomic. A known intake key returns its code (0). With threading on
# (ARGV[4] = window in ms > 0), a live thread key for the sender makes the intake a follow-up
# message on that case (2). Otherwise: reserve the first free candidate code, map key ->
# code, append the entry, and start the sender's thread (1). Nothing half-done survives.
_SUBMIT = """
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then return {existing, 0} end
local window = tonumber(ARGV[4])
if window > 0 then
  local thread = redis.call('GET', KEYS[4])
  if thread then
    redis.call('HSET', KEYS[1], ARGV[1], thread)
    redis.call('XADD', KEYS[3], '*', 'kind', 'message', 'code', thread, 'intake', ARGV[2])
    return {thread, 2}
  end
end
for i = 5, #ARGV do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[3]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[i])
    redis.call('XADD', KEYS[3], '*', 'kind', 'case', 'code', ARGV[i], 'intake', ARGV[2])
    if window > 0 then redis.call('SET', KEYS[4], ARGV[i], 'PX', window) end
    return {ARGV[i], 1}
  end
end
return redis.error_reply('no free case code among the candidates')
"""
_CANDIDATES = 4
# A thread ends only if it still points at the finished case.
_END_THREAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
NO_FREE_CODE = "no free case code"
# A follow-up message on a known case, pushed from the spool (after a restore): once per key.
_FOLLOW_UP = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'kind', 'message', 'code', ARGV[2], 'intake', ARGV[3])
return 1
"""


class _Drained(Exception):
    """A spool file another task pushed meanwhile."""


def _read_entry(path: Path) -> dict[str, str]:
    entry: dict[str, str] = json.loads(path.read_text("utf-8"))
    return entry


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _set_aside(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, folder / path.name)


def thread_key(phone: str) -> str:
    return keys.SMS_THREAD + phone


def spool_file(spool_dir: Path, intake_key: str) -> Path:
    return spool_dir / (hashlib.sha256(intake_key.encode()).hexdigest() + ".json")


def write_spool(spool_dir: Path, code: str, intake: Intake, kind: str) -> None:
    """Hold an intake on disk (fsynced, renamed into place) until Redis takes it: a new
    case (`kind` "case") or a follow-up on case `code` ("message", from a restore)."""
    path = spool_file(spool_dir, intake.key)
    spool_dir.mkdir(parents=True, exist_ok=True)
    # A name of its own: processes sharing a data dir never write the same temporary file.
    tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
    entry = {"code": code, "intake": intake.to_json(), "kind": kind}
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(spool_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class IntakeQueue:
    def __init__(self, client: redis.Redis, spool_dir: Path, secret: str | None = None) -> None:
        """`secret` keys the candidate codes of each intake key (service/cases.code_for):
        processes that share a Redis should share it (HOTLINE_SECRET_KEY)."""
        self._secret = (secret or secrets.token_urlsafe(32)).encode()
        self.redis = client
        self.spool_dir = spool_dir
        self._script = client.register_script(_SUBMIT)
        self._end_thread = client.register_script(_END_THREAD)
        self._index: dict[str, tuple[str, str]] = {}  # spool file -> (code, received_at)
        self.metrics: Metrics | None = None  # counts what intake answered, when set

    async def _push(
        self, intake: Intake, first: str | None = None, thread_within: timedelta | None = None
    ) -> Submitted:
        own = [code_for(self._secret, intake.key, n) for n in range(_CANDIDATES)]
        candidates = ([first] if first else []) + own
        window_ms = int(thread_within.total_seconds() * 1000) if thread_within else 0
        thread = thread_key(intake.phone) if intake.phone and window_ms else keys.SMS_THREAD
        code, outcome = await self._script(
            keys=[keys.INTAKE_KEYS, keys.CODES, keys.INTAKE_STREAM, thread],
            args=[
                intake.key,
                intake.to_json(),
                to_utc_text(intake.received_at),
                window_ms,
                *candidates,
            ],
        )
        code = code.decode() if isinstance(code, bytes) else str(code)
        outcome = int(outcome)
        return Submitted(code, outcome != 0, follow_up=outcome == 2)

    async def end_thread(self, phone: str, code: str) -> None:
        """Case `code` is finished: the number's next text opens a new case (unless its
        thread already points at another case)."""
        try:
            await self._end_thread(keys=[thread_key(phone)], args=[code])
        except REDIS_DOWN as exc:  # the thread key expires by itself
            log.warning("could not end the SMS thread of %s (%s)", phone, exc)

    async def submit(self, intake: Intake, *, thread_within: timedelta | None = None) -> Submitted:
        answered = await self._submit(intake, thread_within)
        if self.metrics is not None:
            outcome = "spooled" if answered.spooled else "queued" if answered.new else "duplicate"
            self.metrics.intake_answered(intake.channel, outcome)
        return answered

    async def _submit(self, intake: Intake, thread_within: timedelta | None) -> Submitted:
        """Queue an intake. With `thread_within`, a text from a number whose case (opened by
        text within that window) is still open joins that case as a follow-up message.

        An intake key already in the spool keeps the code the spool gave it: the spooled
        entry is pushed first, so a retry right after Redis returns gets the same code."""
        spooled = self._spool_file(intake.key)
        try:
            if spooled.exists():
                with contextlib.suppress(_Drained):
                    return await self._push_spooled(spooled)
            return await self._push(intake, thread_within=thread_within)
        except RedisError as exc:
            # Unreachable, read-only after a failover, out of memory, unable to persist: the
            # request is kept on disk all the same. Only "no free code" is ours to raise.
            if NO_FREE_CODE in str(exc):
                raise
            log.error("redis refused intake (%s); spooling %s to disk", exc, intake.key)
            return self._spool(intake)

    # -- spool: the fallback when Redis is unreachable ---------------------------------

    def _spool_file(self, intake_key: str) -> Path:
        return spool_file(self.spool_dir, intake_key)

    def _spool(self, intake: Intake) -> Submitted:
        path = self._spool_file(intake.key)
        if path.exists():  # the same request retried while Redis is still down
            return Submitted(json.loads(path.read_text("utf-8"))["code"], False, spooled=True)
        code = code_for(self._secret, intake.key, 0)  # what Redis would have reserved first
        write_spool(self.spool_dir, code, intake, "case")
        return Submitted(code, True, spooled=True)

    def spooled(self) -> list[Path]:
        """Spool files, oldest first (one may vanish meanwhile: another task pushed it)."""
        if not self.spool_dir.is_dir():
            return []
        found = []
        for path in self.spool_dir.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                found.append((path.stat().st_mtime, path))
        return [path for _, path in sorted(found)]

    async def _push_spooled(self, path: Path) -> Submitted:
        """Push one spooled intake with the code the spool gave it, then drop the file."""
        try:
            entry = _read_entry(path)
        except FileNotFoundError:  # drained meanwhile: Redis now knows the key
            raise _Drained from None
        intake = Intake.from_json(entry["intake"])
        if entry.get("kind") == "message":
            submitted = await self._push_follow_up(entry["code"], intake)
            _remove(path)
            return submitted
        submitted = await self._push(intake, first=entry["code"])
        if submitted.code != entry["code"]:
            # Redis took the intake but its answer was lost (a text that joined a thread):
            # the code the submitter holds leads to the case all the same.
            await self.redis.hset(keys.CODE_ALIASES, entry["code"], submitted.code)
            log.warning("spooled intake %s was queued as %s; code %s now leads there",
                        intake.key, submitted.code, entry["code"])  # fmt: skip
        _remove(path)
        return submitted

    async def _push_follow_up(self, code: str, intake: Intake) -> Submitted:
        """A follow-up on case `code`, once per intake key."""
        script = self.redis.register_script(_FOLLOW_UP)
        new = await script(
            keys=[keys.INTAKE_KEYS, keys.INTAKE_STREAM], args=[intake.key, code, intake.to_json()]
        )
        return Submitted(code, bool(int(new)), follow_up=True)

    async def snapshot(self, *, dead: bool = False) -> list[dict[str, str]]:
        """Every intake in the stream, stored or not yet ({"code", "kind", "intake"}): what
        a backup must hold besides the database. Routing again is idempotent. With `dead`,
        the dead-lettered ones instead."""
        found: Any = await self.redis.xrange(keys.INTAKE_DEAD if dead else keys.INTAKE_STREAM)
        return [
            {
                k.decode(): v.decode()
                for k, v in fields.items()
                if k in (b"code", b"kind", b"intake", b"reason")
            }
            for _, fields in found
        ]

    async def alias_of(self, code: str) -> str | None:
        """The code a spooled code turned out to be (see _push_spooled), if any."""
        try:
            value = await self.redis.hget(keys.CODE_ALIASES, code)
        except RedisError:
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def drain_spool(self) -> int:
        """Push spooled intakes to Redis (keeping their codes); returns how many went. A
        file that cannot be read is set aside in spool/bad/ (logged), never blocking the
        rest; a Redis error stops this round (the next one tries again)."""
        pushed = 0
        for path in self.spooled():
            try:
                await self._push_spooled(path)
            except _Drained:
                continue
            except (ValueError, KeyError, TypeError) as exc:
                _set_aside(path, self.spool_dir / "bad")
                log.error("spool file %s cannot be read (%r); moved to spool/bad/", path, exc)
                continue
            pushed += 1
        return pushed

    def spooled_at(self, code: str) -> str | None:
        """When a code still in the spool was issued (UTC text); None if it is not there.
        Only files new since the last lookup are read (this process or another on the same
        data dir may have spooled them), so a flood of lookups never rereads the spool."""
        try:
            names = {n for n in os.listdir(self.spool_dir) if n.endswith(".json")}
        except FileNotFoundError:
            return None
        self._index = {name: seen for name, seen in self._index.items() if name in names}
        for name in names - self._index.keys():
            try:
                entry = json.loads((self.spool_dir / name).read_text("utf-8"))
                self._index[name] = (entry["code"], str(json.loads(entry["intake"])["received_at"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return next((at for c, at in self._index.values() if c == code), None)

    async def received_at(self, code: str) -> str | None:
        """When a code was issued (UTC text), for codes not routed into the store yet:
        reserved in Redis, or still in the spool (then also while Redis is down)."""
        try:
            value = await self.redis.hget(keys.CODES, code)
        except REDIS_DOWN:
            value = None
        if value is None:
            return self.spooled_at(code)
        return value.decode() if isinstance(value, bytes) else str(value)

    async def restore_reservations(self, rows: list[tuple[str, str, str]]) -> int:
        """Re-reserve codes and intake keys the store knows but Redis lost (a new Redis)."""
        restored = 0
        for start in range(0, len(rows), 500):
            batch = rows[start : start + 500]
            async with self.redis.pipeline(transaction=False) as pipe:
                for code, intake_key, received_at in batch:
                    pipe.hsetnx(keys.CODES, code, received_at)
                    pipe.hsetnx(keys.INTAKE_KEYS, intake_key, code)
                results = await pipe.execute()
            restored += sum(1 for r in results[::2] if r)
        return restored
