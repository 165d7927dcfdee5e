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
from collections.abc import AsyncIterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from hotline.queue import keys
from hotline.queue.batched import BatchedScript
from hotline.queue.errors import REDIS_DOWN
from hotline.service.cases import Intake, code_for, to_utc_text
from hotline.service.metrics import Metrics
from hotline.service.ports import Submitted

log = logging.getLogger(__name__)

# One round trip, atomic. KEYS: the intake key's idempotency key, the code filter, the
# intake stream, the sender's SMS thread, the unrouted codes, the filter's ready mark. A
# Redis whose filter was not built from the store refuses (intake spools). A known intake
# key returns its code (0; 3 when it was a follow-up, its key's value marked "m:"). With
# threading on (ARGV[3] = window in ms > 0), a live thread key for the sender makes the
# intake a follow-up message on that case (2). Otherwise: take
# the first candidate the filter says was never issued, add it to the filter, map key ->
# code for the idempotency window (ARGV[4] ms), append the entry, and start the sender's
# thread (1). Nothing half-done survives. filter_bits below computes the same bits in
# Python.
_SUBMIT = """
if redis.call('EXISTS', KEYS[6]) == 0 then
  return redis.error_reply('FILTERLESS the case-code filter is not built')
end
local existing = redis.call('GET', KEYS[1])
if existing then
  if string.sub(existing, 1, 2) == 'm:' then return {string.sub(existing, 3), 3} end
  return {existing, 0}
end
local window = tonumber(ARGV[3])
if window > 0 then
  local thread = redis.call('GET', KEYS[4])
  if thread then
    redis.call('SET', KEYS[1], 'm:' .. thread, 'PX', ARGV[4])
    redis.call('XADD', KEYS[3], '*', 'kind', 'message', 'code', thread, 'intake', ARGV[1])
    return {thread, 2}
  end
end
for i = 5, #ARGV do
  local code = ARGV[i]
  local digest = redis.sha1hex(code)
  local bits = {}
  local issued = true
  for j = 1, HASHES do
    local bit = tonumber(string.sub(digest, j * 7 - 6, j * 7), 16) % SIZE
    bits[j] = bit
    if issued and redis.call('GETBIT', KEYS[2], bit) == 0 then issued = false end
  end
  if not issued then
    for j = 1, HASHES do redis.call('SETBIT', KEYS[2], bits[j], 1) end
    redis.call('HSET', KEYS[5], code, ARGV[2])
    redis.call('SET', KEYS[1], code, 'PX', ARGV[4])
    redis.call('XADD', KEYS[3], '*', 'kind', 'case', 'code', code, 'intake', ARGV[1])
    if window > 0 then redis.call('SET', KEYS[4], code, 'PX', window) end
    return {code, 1}
  end
end
return redis.error_reply('no free case code among the candidates')
""".replace("HASHES", str(keys.CODE_FILTER_HASHES)).replace("SIZE", str(keys.CODE_FILTER_BITS))
# Eight candidates: with a million codes issued, the filter wrongly calls one taken about one
# time in 20,000, so all eight never are; at ten million, about one intake in 25,000 fails.
_CANDIDATES = 8
# The first two go with the intake; the other six only once both were taken (at a million
# codes issued, about one intake in 400 million; at ten million, one in 13), which spares
# each intake six HMACs and six arguments to send.
_FIRST_SENT = 2
# How long an intake key is remembered in Redis: retries within it (Twilio's, a form sent
# twice, a kiosk back online) get the same code at once. A later retry is stored once all
# the same (the store's unique intake key), and its new code leads to the case.
IDEMPOTENCY_WINDOW = timedelta(days=7)
# A thread ends only if it still points at the finished case.
_END_THREAD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
NO_FREE_CODE = "no free case code"
ANSWER_KEPT = 86_400  # seconds: a carrier retries within minutes
# A follow-up message on a known case, pushed from the spool (after a restore): once per key.
_FOLLOW_UP = """
if not redis.call('SET', KEYS[1], 'm:' .. ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('XADD', KEYS[2], '*', 'kind', 'message', 'code', ARGV[1], 'intake', ARGV[2])
return 1
"""


def filter_bits(code: str) -> list[int]:
    """The code filter's bits for a code: as the submit script computes them."""
    digest = hashlib.sha1(code.encode(), usedforsecurity=False).hexdigest()
    return [
        int(digest[j * 7 : j * 7 + 7], 16) % keys.CODE_FILTER_BITS
        for j in range(keys.CODE_FILTER_HASHES)
    ]


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


def _spool_name(intake_key: str) -> str:
    return hashlib.sha256(intake_key.encode()).hexdigest() + ".json"


def spool_file(spool_dir: Path, intake_key: str) -> Path:
    return spool_dir / _spool_name(intake_key)


def write_spool(
    spool_dir: Path, code: str, intake: Intake, kind: str, fingerprint: str | None = None
) -> None:
    """Hold an intake on disk (fsynced, renamed into place) until Redis takes it: a new
    case (`kind` "case") or a follow-up on case `code` ("message", from a restore); with the
    `fingerprint` of the request its key was given for (an API Idempotency-Key's), which
    Redis could not be told."""
    path = spool_file(spool_dir, intake.key)
    spool_dir.mkdir(parents=True, exist_ok=True)
    # A name of its own: processes sharing a data dir never write the same temporary file.
    tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
    entry = {"code": code, "intake": intake.to_json(), "kind": kind}
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
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


class KeyReused(Exception):
    """An intake key spooled for one request, given again with another (two requests under
    one API Idempotency-Key at once, while Redis was down)."""


class CannotKeep(Exception):
    """Neither Redis nor the spool could keep a request: nothing was kept, and the submitter
    must be told so (never "received")."""


def _entries(found: Any) -> list[dict[str, str]]:
    """A stream's entries as a backup keeps them."""
    kept = (b"code", b"kind", b"intake", b"reason")
    return [{k.decode(): v.decode() for k, v in fields.items() if k in kept} for _, fields in found]


class IntakeQueue:
    def __init__(
        self,
        client: redis.Redis,
        spool_dir: Path,
        secret: str | None = None,
        *,
        idempotency_window: timedelta = IDEMPOTENCY_WINDOW,
    ) -> None:
        """`secret` keys the candidate codes of each intake key (service/cases.code_for):
        processes that share a Redis should share it (HOTLINE_SECRET_KEY)."""
        self._secret = (secret or secrets.token_urlsafe(32)).encode()
        self._remember_ms = int(idempotency_window.total_seconds() * 1000)
        self.redis = client
        self.spool_dir = spool_dir
        self._script = BatchedScript(client, _SUBMIT)  # pipelines, one round at a time
        self._end_thread = client.register_script(_END_THREAD)
        self._index: dict[str, tuple[str, str]] = {}  # spool file -> (code, received_at)
        self.metrics: Metrics | None = None  # counts what intake answered, when set

    async def same_request(self, key: str, fingerprint: str) -> bool:
        """Whether the intake key `key` was used, within the idempotency window, with no
        request but this one (`fingerprint`, a digest of it): False when another used it —
        as Redis remembers, or as the spool does for a request taken while Redis was down
        (its fingerprint goes to Redis when it is pushed). True when neither can say."""
        if (spooled := self._spooled(key)) is not None:
            with contextlib.suppress(FileNotFoundError):  # pushed meanwhile: Redis knows
                return _read_entry(spooled).get("fingerprint") in (None, fingerprint)
        name = keys.intake_request(key)
        try:
            if await self.redis.set(name, fingerprint, nx=True, px=self._remember_ms):
                return True
            return (await self.redis.get(name)) in (None, fingerprint.encode())
        except RedisError:
            return True

    async def _push(
        self, intake: Intake, first: str | None = None, thread_within: timedelta | None = None
    ) -> Submitted:
        own = [code_for(self._secret, intake.key, n) for n in range(_FIRST_SENT)]
        window_ms = int(thread_within.total_seconds() * 1000) if thread_within else 0
        thread = thread_key(intake.phone) if intake.phone and window_ms else keys.SMS_THREAD
        script_keys = [
            keys.intake_key(intake.key),
            keys.CODE_FILTER,
            keys.INTAKE_STREAM,
            thread,
            keys.UNROUTED_CODES,
            keys.CODE_FILTER_READY,
        ]
        fixed = [intake.to_json(), to_utc_text(intake.received_at), window_ms, self._remember_ms]
        try:
            code, outcome = await self._script(
                keys=script_keys, args=[*fixed, *([first] if first else []), *own]
            )
        except RedisError as exc:
            if NO_FREE_CODE not in str(exc):
                raise
            # All taken (the script wrote nothing): the other candidates, in the same order.
            rest = [code_for(self._secret, intake.key, n) for n in range(_FIRST_SENT, _CANDIDATES)]
            code, outcome = await self._script(keys=script_keys, args=[*fixed, *rest])
        code = code.decode() if isinstance(code, bytes) else str(code)
        outcome = int(outcome)  # 0 a known key, 1 a new case, 2 a message, 3 a known message
        return Submitted(code, outcome in (1, 2), follow_up=outcome in (2, 3))

    async def end_thread(self, phone: str, code: str) -> None:
        """Case `code` is finished: the number's next text opens a new case (unless its
        thread already points at another case)."""
        try:
            await self._end_thread(keys=[thread_key(phone)], args=[code])
        except REDIS_DOWN as exc:  # the thread key expires by itself
            log.warning("could not end the SMS thread of %s (%s)", phone, exc)

    async def open_thread(self, phone: str, code: str, within: timedelta) -> None:
        """The number's next texts (within `within`) join case `code`. While Redis cannot be
        reached, they open cases of their own, as any text then does."""
        try:
            await self.redis.set(thread_key(phone), code, px=int(within.total_seconds() * 1000))
        except RedisError as exc:
            log.warning("could not open an SMS thread of %s on %s (%s)", phone, code, exc)

    async def answered(self, message_id: str) -> str | None:
        """What a text that changed something (a rating) was answered, if it was: a retry
        of it (the carrier's, when our answer was lost) gets the same answer."""
        try:
            said = await self.redis.get(keys.SMS_ANSWER + message_id)
        except RedisError:
            return None
        return said.decode() if isinstance(said, bytes) else said

    async def remember_answer(self, message_id: str, text: str) -> None:
        try:
            await self.redis.set(keys.SMS_ANSWER + message_id, text, ex=ANSWER_KEPT)
        except RedisError as exc:
            log.warning("could not keep the answer to %s (%s)", message_id, exc)

    async def thread_of(self, phone: str) -> str | None:
        """The case code of the number's open thread (its next text joins that case). While
        Redis cannot be reached, none: a text then opens a case of its own (the spool)."""
        try:
            code = await self.redis.get(thread_key(phone))
        except REDIS_DOWN:
            return None
        return code.decode() if isinstance(code, bytes) else code

    async def submit(
        self,
        intake: Intake,
        *,
        thread_within: timedelta | None = None,
        fingerprint: str | None = None,
    ) -> Submitted:
        """Queue an intake (see `_submit`); `fingerprint`, of the request an API key was
        given for, is kept with it if it has to be spooled (`same_request`)."""
        answered = await self._submit(intake, thread_within, fingerprint)
        if self.metrics is not None:
            outcome = "spooled" if answered.spooled else "queued" if answered.new else "duplicate"
            self.metrics.intake_answered(intake.channel, outcome)
        return answered

    async def _submit(
        self, intake: Intake, thread_within: timedelta | None, fingerprint: str | None = None
    ) -> Submitted:
        """Queue an intake. With `thread_within`, a text from a number whose case (opened by
        text within that window) is still open joins that case as a follow-up message.

        An intake key already in the spool keeps the code the spool gave it: the spooled
        entry is pushed first, so a retry right after Redis returns gets the same code."""
        try:
            if (spooled := self._spooled(intake.key)) is not None:
                with contextlib.suppress(_Drained):
                    return await self._push_spooled(spooled)
            return await self._push(intake, thread_within=thread_within)
        except RedisError as exc:
            # Unreachable, read-only after a failover, out of memory, unable to persist: the
            # request is kept on disk all the same. Only "no free code" is ours to raise.
            if NO_FREE_CODE in str(exc):
                raise
            log.error("redis refused intake (%s); spooling %s to disk", exc, intake.key)
            return self._spool(intake, fingerprint)

    # -- spool: the fallback when Redis is unreachable ---------------------------------

    def _spooled(self, intake_key: str) -> Path | None:
        """The intake key's spool file, if there is one. Asked on every intake: by its name
        as text, not a Path (pathlib's joins and stat were a twentieth of an SMS)."""
        name = os.path.join(self.spool_dir, _spool_name(intake_key))
        return Path(name) if os.path.exists(name) else None

    def _spool_file(self, intake_key: str) -> Path:
        return spool_file(self.spool_dir, intake_key)

    def _spool(self, intake: Intake, fingerprint: str | None = None) -> Submitted:
        path = self._spool_file(intake.key)
        if path.exists():  # the same request retried while Redis is still down
            entry = json.loads(path.read_text("utf-8"))
            if fingerprint is not None and entry.get("fingerprint") not in (None, fingerprint):
                raise KeyReused(intake.key)
            return Submitted(entry["code"], False, spooled=True)
        code = code_for(self._secret, intake.key, 0)  # what Redis would have reserved first
        try:
            write_spool(self.spool_dir, code, intake, "case", fingerprint)
        except OSError as exc:  # read-only, full, not a folder: nowhere to keep it
            log.critical(
                "cannot spool %s (%r): Redis down and the spool refused it", intake.key, exc
            )
            raise CannotKeep(str(exc)) from exc
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
        if fingerprint := entry.get("fingerprint"):
            # The request the key was given for, as same_request would have noted it.
            name = keys.intake_request(intake.key)
            await self.redis.set(name, fingerprint, nx=True, px=self._remember_ms)
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
            keys=[keys.intake_key(intake.key), keys.INTAKE_STREAM],
            args=[code, intake.to_json(), self._remember_ms],
        )
        return Submitted(code, bool(int(new)), follow_up=True)

    async def snapshot(self) -> list[dict[str, str]]:
        """Every intake in the stream, stored or not yet ({"code", "kind", "intake"})."""
        return _entries(await self.redis.xrange(keys.INTAKE_STREAM))

    async def backup_snapshot(self) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """The stream's intakes and its dead letters, read together (one MULTI): what a
        backup must hold besides the database (routing again is idempotent). Read apart, a
        dead letter put back between the two reads would be in neither."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(keys.INTAKE_STREAM)
            pipe.xrange(keys.INTAKE_DEAD)
            in_flight, dead = await pipe.execute()
        return _entries(in_flight), _entries(dead)

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
            value = await self.redis.hget(keys.UNROUTED_CODES, code)
        except REDIS_DOWN:
            value = None
        if value is None:
            return self.spooled_at(code)
        return value.decode() if isinstance(value, bytes) else str(value)

    async def has_code_filter(self) -> bool:
        """False until the filter was built from the store in this Redis: a new one, one
        that lost its data, or one from before the filter."""
        return bool(await self.redis.exists(keys.CODE_FILTER_READY))

    async def rebuild_code_filter(self, stored: AsyncIterable[Sequence[str]]) -> int:
        """Build the code filter in a Redis that has none: every code the store holds
        (`stored`, in chunks), every code still in the intake stream or in the hashes of
        the old layout. It is OR-ed into the live filter, so codes other processes
        issue meanwhile stay in it. Codes in the stream are noted as unrouted. Spooled codes
        are left out: each goes in when its intake is pushed, keeping its code. Reads every
        stored code: run only when `has_code_filter` is False. Returns how many codes."""
        bitmap = bytearray(keys.CODE_FILTER_BITS // 8)
        count = 0

        def add(code: str) -> None:
            nonlocal count
            count += 1
            for bit in filter_bits(code):
                bitmap[bit >> 3] |= 0x80 >> (bit & 7)  # Redis numbers a byte's bits from the top

        async for chunk in stored:
            for code in chunk:
                add(code)
        unrouted: dict[str, str] = {}
        for entry in await self.snapshot():
            if entry.get("kind", "case") == "case":
                add(entry["code"])
                received = json.loads(entry["intake"]).get("received_at")
                unrouted[entry["code"]] = str(received)
        async for code, _ in self.redis.hscan_iter(keys.LEGACY_CODES, count=1000):
            add(code.decode() if isinstance(code, bytes) else str(code))
        building = f"{keys.CODE_FILTER}:building:{secrets.token_hex(4)}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(building, bytes(bitmap))
            pipe.bitop("OR", keys.CODE_FILTER, keys.CODE_FILTER, building)
            pipe.delete(building)
            if unrouted:
                pipe.hset(keys.UNROUTED_CODES, mapping=unrouted)  # type: ignore[arg-type]
            pipe.delete(keys.LEGACY_CODES, keys.LEGACY_INTAKE_KEYS)
            pipe.set(keys.CODE_FILTER_READY, count)
            await pipe.execute()
        return count
