"""A Lua script called by many requests at once, sent to Redis in pipelines: the calls
gathered go in one write and come back in one read.

The SMS webhook and the web form each call the submit script once per request. Through
redis-py one call at a time, each took a connection from the pool, packed, wrote and read on
its own: a quarter of the webhook's work. One pipeline costs little more than one call, so
calls are sent in rounds, one round in flight at a time: the calls made while one is out go
together in the next, as soon as it is answered. Under load a round carries as many calls
as came in one round trip (one per loop turn gathered ~2; one per round trip, ~5-10); a
lone call goes at the loop's next turn. A Redis that stops answering holds a round until
the client's socket timeout or ROUND_WAIT, whichever comes first, so a call then waits for
at most the round before its own and its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# Calls per pipeline at most: a burst beyond it goes in several, each on a connection.
MOST = 64
# A round with no answer by then fails (intake spools its calls), whatever the client's own
# timeouts: a call waits for at most two rounds, inside Twilio's 15-s webhook timeout.
ROUND_WAIT = 6.0

Call = tuple[list[str], list[Any], "asyncio.Future[Any]"]


def _settle(call: Call, result: Any) -> None:
    *_, answer = call
    if answer.done():  # its caller gave up waiting
        return
    if isinstance(result, Exception):  # this call's own error; the others stand
        answer.set_exception(result)
    else:
        answer.set_result(result)


class BatchedScript:
    def __init__(self, client: redis.Redis, script: str) -> None:
        self.client = client
        self.script: AsyncScript = client.register_script(script)
        self._gathering: list[Call] = []
        self._round: asyncio.Task[None] | None = None  # the round in flight (held: the
        # loop keeps only weak references to tasks)

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """The script's answer to this call, or the error Redis or the connection gave it."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if self._round is not None and self._round.get_loop() is not loop:
            self._round, self._gathering = None, []  # left by a closed loop: nothing waits
        if not self._gathering and self._round is None:
            loop.call_soon(self._start_round)
        self._gathering.append((keys, args, answer))
        return await answer

    def _start_round(self) -> None:
        """Send what has gathered, unless a round is in flight: then it goes when that one
        is answered, with whatever else came meanwhile."""
        if self._round is not None or not self._gathering:
            return
        gathered, self._gathering = self._gathering, []
        self._round = asyncio.create_task(self._send_round(gathered))
        self._round.add_done_callback(self._round_done)

    def _round_done(self, round_: asyncio.Task[None]) -> None:
        self._round = None
        if round_.cancelled():  # the loop is stopping: no new round; the waiting calls fail
            waiting, self._gathering = self._gathering, []
            stopped = RedisConnectionError("intake is stopping: not sent to Redis")
            for call in waiting:
                _settle(call, stopped)
            return
        self._start_round()

    async def _send_round(self, gathered: list[Call]) -> None:
        chunks = [gathered[start : start + MOST] for start in range(0, len(gathered), MOST)]
        ended = await asyncio.gather(*map(self._send, chunks), return_exceptions=True)
        for chunk, outcome in zip(chunks, ended, strict=True):
            if isinstance(outcome, Exception):  # a fault of ours: no call is left waiting
                log.error("a round of %d calls failed", len(chunk), exc_info=outcome)
                for call in chunk:
                    _settle(call, outcome)

    async def _send(self, calls: list[Call]) -> None:
        answers = await self._answers(calls, lambda: self._pipeline(calls))
        if answers is None:
            return
        unknown = []
        for call, result in zip(calls, answers, strict=True):
            if isinstance(result, NoScriptError):
                unknown.append(call)
            else:  # settled now: what follows for the others cannot undo a call that ran
                _settle(call, result)
        if unknown:  # a Redis restarted or flushed: load the script, send those calls again

            async def again() -> list[Any]:
                await self.client.script_load(self.script.script)
                return await self._pipeline(unknown)

            answers = await self._answers(unknown, again)
            if answers is not None:
                for call, result in zip(unknown, answers, strict=True):
                    _settle(call, result)

    @staticmethod
    async def _answers(
        calls: list[Call], send: Callable[[], Awaitable[list[Any]]]
    ) -> list[Any] | None:
        """What `send` answered for `calls`; None when it failed (the connection), which
        every one of them then gets."""
        try:
            return await send()
        except asyncio.CancelledError:
            for *_, answer in calls:
                answer.cancel()
            raise
        except Exception as exc:
            for *_, answer in calls:
                if not answer.done():
                    answer.set_exception(exc)
            return None

    async def _pipeline(self, calls: list[Call]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for keys, args, _ in calls:
            pipe.evalsha(self.script.sha, len(keys), *keys, *args)
        try:
            async with asyncio.timeout(ROUND_WAIT):  # redis-py drops the connection then
                answers: list[Any] = await pipe.execute(raise_on_error=False)
        except TimeoutError:
            raise RedisTimeoutError(f"no answer from Redis within {ROUND_WAIT:g} s") from None
        return answers
