"""A script called by many requests at once goes to Redis in pipelines: each call still gets
its own answer or its own error, exactly once, on a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hotline.queue import batched
from hotline.queue.batched import BatchedScript

# Counts its calls; refuses an argument "bad" with an error of its own.
COUNTED = """
if ARGV[1] == 'bad' then return redis.error_reply('BAD refused ' .. ARGV[2]) end
return {redis.call('INCR', KEYS[1]), ARGV[1]}
"""


def counting_pipelines(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many pipelines the client is asked for: one entry per pipeline, as it is made."""
    made: list[int] = []
    pipeline = client.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(1)
        return pipeline(*args, **kwargs)

    monkeypatch.setattr(client, "pipeline", counted)
    return made


async def test_calls_of_one_loop_round_share_a_pipeline_and_each_gets_its_answer(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = BatchedScript(redis_client, COUNTED)
    assert await script(["n"], ["loads the script"]) == [1, b"loads the script"]
    made = counting_pipelines(redis_client, monkeypatch)
    answers = await asyncio.gather(*(script(["n"], [f"call{i}"]) for i in range(20)))
    assert len(made) == 1
    assert [a[1] for a in answers] == [f"call{i}".encode() for i in range(20)]
    assert sorted(a[0] for a in answers) == list(range(2, 22))
    # A lone call later goes alone, at once.
    assert await script(["n"], ["late"]) == [22, b"late"]
    assert len(made) == 2


class Watched(BatchedScript):
    """Says when a pipeline is being sent."""

    def __init__(self, client: redis.Redis, script: str) -> None:
        super().__init__(client, script)
        self.sent = asyncio.Event()

    async def _pipeline(self, calls: list[Any]) -> list[Any]:
        self.sent.set()
        return await super()._pipeline(calls)


async def test_calls_made_while_a_round_is_in_flight_go_together_in_the_next(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Watched(redis_client, COUNTED)
    await script(["n"], ["loads the script"])
    made = counting_pipelines(redis_client, monkeypatch)
    script.sent.clear()
    first = asyncio.ensure_future(script(["n"], ["first"]))
    await script.sent.wait()  # its round is out, waiting for Redis
    later = [asyncio.ensure_future(script(["n"], [f"later{i}"])) for i in range(10)]
    await asyncio.sleep(0)
    assert len(made) == 1  # the later calls wait for the round in flight
    assert (await first) == [2, b"first"]
    answers = await asyncio.gather(*later)
    assert len(made) == 2  # and then go in one pipeline
    assert [a[1] for a in answers] == [f"later{i}".encode() for i in range(10)]
    assert sorted(a[0] for a in answers) == list(range(3, 13))


async def test_a_burst_past_the_pipeline_limit_goes_in_several(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = BatchedScript(redis_client, COUNTED)
    await script(["n"], ["loads the script"])
    made = counting_pipelines(redis_client, monkeypatch)
    count = batched.MOST * 2 + 1
    answers = await asyncio.gather(*(script(["n"], [str(i)]) for i in range(count)))
    assert len(made) == 3
    assert [a[1] for a in answers] == [str(i).encode() for i in range(count)]
    assert int(await redis_client.get("n") or 0) == count + 1


async def test_an_error_stays_with_its_own_call(redis_client: redis.Redis) -> None:
    script = BatchedScript(redis_client, COUNTED)
    answers = await asyncio.gather(
        script(["n"], ["one"]), script(["n"], ["bad", "this"]), script(["n"], ["three"]),
        return_exceptions=True,
    )  # fmt: skip
    assert answers[0] == [1, b"one"] and answers[2] == [2, b"three"]
    assert isinstance(answers[1], ResponseError) and "refused this" in str(answers[1])


async def test_a_redis_that_lost_its_scripts_runs_each_call_once(
    redis_client: redis.Redis,
) -> None:
    script = BatchedScript(redis_client, COUNTED)
    assert await script(["n"], ["first"]) == [1, b"first"]
    await redis_client.script_flush()  # as a restarted or flushed Redis would be
    answers = await asyncio.gather(*(script(["n"], [str(i)]) for i in range(5)))
    assert sorted(a[0] for a in answers) == [2, 3, 4, 5, 6]
    assert int(await redis_client.get("n") or 0) == 6  # none ran twice


async def test_an_unreachable_redis_fails_every_call_of_the_pipeline(tmp_path: Path) -> None:
    dead = redis.Redis.from_url(f"unix://{tmp_path}/nothing.sock", socket_connect_timeout=0.2)
    script = BatchedScript(dead, COUNTED)
    answers = await asyncio.gather(
        *(script(["n"], [str(i)]) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(a, RedisConnectionError) for a in answers)
    await dead.aclose()


async def test_a_caller_that_gives_up_leaves_the_others_answered(
    redis_client: redis.Redis,
) -> None:
    script = BatchedScript(redis_client, COUNTED)
    first = asyncio.ensure_future(script(["n"], ["gives up"]))
    second = asyncio.ensure_future(script(["n"], ["waits"]))
    await asyncio.sleep(0)
    first.cancel()
    assert (await second)[1] == b"waits"
    with pytest.raises(asyncio.CancelledError):
        await first


class FlushedMidway(BatchedScript):
    """Its first pipeline of several calls runs the first alone; the rest are answered
    NOSCRIPT, as when a SCRIPT FLUSH (or a failover) lands between two commands of one
    pipeline."""

    flushed = False

    async def _pipeline(self, calls: list[Any]) -> list[Any]:
        if self.flushed or len(calls) < 2:
            return await super()._pipeline(calls)
        self.flushed = True
        ran = await super()._pipeline(calls[:1])
        return ran + [NoScriptError("NOSCRIPT No matching script.") for _ in calls[1:]]


async def test_a_call_that_ran_keeps_its_answer_when_the_reload_for_another_fails(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = FlushedMidway(redis_client, COUNTED)
    await script(["n"], ["loads the script"])

    async def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(redis_client, "script_load", unreachable)
    answers = await asyncio.gather(
        script(["n"], ["ran"]), script(["n"], ["refused"]), return_exceptions=True
    )
    assert answers[0] == [2, b"ran"]  # it ran: never reported as failed (the intake spooled)
    assert isinstance(answers[1], RedisConnectionError)
    assert int(await redis_client.get("n") or 0) == 2


async def _silent_redis(path: Path) -> asyncio.AbstractServer:
    """A socket that takes connections and never answers (a Redis that hangs)."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    return await asyncio.start_unix_server(hold, path=str(path))


async def test_a_round_without_an_answer_fails_within_the_round_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the client's own timeouts (none here): its calls fail (intake spools them),
    and so do the calls that waited behind it, each within its own round's wait."""
    monkeypatch.setattr(batched, "ROUND_WAIT", 0.3)
    server = await _silent_redis(tmp_path / "silent.sock")
    silent = redis.Redis.from_url(f"unix://{tmp_path}/silent.sock")  # no socket timeout
    script = Watched(silent, COUNTED)
    loop = asyncio.get_running_loop()
    began = loop.time()
    first = asyncio.ensure_future(script(["n"], ["first"]))
    await script.sent.wait()
    behind = asyncio.ensure_future(script(["n"], ["behind"]))
    answers = await asyncio.gather(first, behind, return_exceptions=True)
    assert all(isinstance(a, RedisTimeoutError) for a in answers), answers
    assert loop.time() - began < 2.0
    await silent.aclose()
    server.close()


async def test_calls_waiting_behind_a_cancelled_round_fail_and_no_round_follows(
    tmp_path: Path,
) -> None:
    """The loop stopping cancels the round in flight: what waited behind it is told it was
    not sent (a caller still running spools it), and no new round is started."""
    server = await _silent_redis(tmp_path / "silent.sock")
    silent = redis.Redis.from_url(f"unix://{tmp_path}/silent.sock")
    script = Watched(silent, COUNTED)
    first = asyncio.ensure_future(script(["n"], ["first"]))
    await script.sent.wait()
    behind = [asyncio.ensure_future(script(["n"], [str(i)])) for i in range(3)]
    await asyncio.sleep(0)
    assert script._round is not None
    script._round.cancel()
    answers = await asyncio.gather(first, *behind, return_exceptions=True)
    assert isinstance(answers[0], asyncio.CancelledError)
    assert all(isinstance(a, RedisConnectionError) for a in answers[1:]), answers
    await asyncio.sleep(0)
    assert script._round is None and not script._gathering
    await silent.aclose()
    server.close()


async def test_a_caller_that_gives_up_behind_a_round_leaves_the_others_answered(
    redis_client: redis.Redis,
) -> None:
    script = Watched(redis_client, COUNTED)
    await script(["n"], ["loads the script"])
    script.sent.clear()
    first = asyncio.ensure_future(script(["n"], ["first"]))
    await script.sent.wait()
    quits = asyncio.ensure_future(script(["n"], ["gives up"]))
    stays = asyncio.ensure_future(script(["n"], ["stays"]))
    await asyncio.sleep(0)
    quits.cancel()
    assert (await first)[1] == b"first"
    assert (await stays)[1] == b"stays"
    with pytest.raises(asyncio.CancelledError):
        await quits


class Miscounted(BatchedScript):
    """Its pipeline answers one call too few: a fault of ours inside a round."""

    async def _pipeline(self, calls: list[Any]) -> list[Any]:
        return (await super()._pipeline(calls))[:-1]


async def test_a_fault_inside_a_round_reaches_every_call_of_it(
    redis_client: redis.Redis,
) -> None:
    script = Miscounted(redis_client, COUNTED)
    await redis_client.script_load(COUNTED)
    answers = await asyncio.gather(
        *(script(["n"], [str(i)]) for i in range(3)), return_exceptions=True
    )
    # The calls answered before the fault keep their answers; the rest get it: none waits.
    assert answers[:2] == [[1, b"0"], [2, b"1"]]
    assert isinstance(answers[2], ValueError)
    assert script._round is None
    assert (await BatchedScript(redis_client, COUNTED)(["n"], ["after"]))[1] == b"after"
