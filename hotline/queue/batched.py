"""A Lua script called by many requests at once, sent to Redis in pipelines: the calls made
while the event loop runs one round go in one write and come back in one read.

The SMS webhook and the web form each call the submit script once per request. Through
redis-py one call at a time, each took a connection from the pool, packed, wrote and read on
its own: a quarter of the webhook's work. Under load a round gathers several calls, and one
pipeline costs little more than one call. A lone call waits no longer than the loop's next
round."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# Calls per pipeline at most: a burst beyond it goes in several, each on a connection.
MOST = 64

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
        self._sending: set[asyncio.Task[None]] = set()  # held: the loop keeps weak ones

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """The script's answer to this call, or the error Redis or the connection gave it."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if not self._gathering:
            loop.call_soon(self._send_gathered)
        self._gathering.append((keys, args, answer))
        return await answer

    def _send_gathered(self) -> None:
        gathered, self._gathering = self._gathering, []
        for start in range(0, len(gathered), MOST):
            task = asyncio.create_task(self._send(gathered[start : start + MOST]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

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
        answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers
