"""`hotline bench`: measure this machine. Each measurement starts its own services on loopback
(an embedded redis-server, a SQLite file or a throwaway PostgreSQL cluster, real `hotline`
processes), runs rounds interleaved across what it compares, and reports min/median/max.
Nothing here asserts a number: BENCHMARKS.md records what a run said and where time goes."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from hotline.bench.drain import drain_round
from hotline.bench.intake import intake_rounds
from hotline.bench.latency import latency_rounds
from hotline.bench.postgres import PostgresCluster
from hotline.bench.scale import measure

log = logging.getLogger(__name__)


@dataclass
class Result:
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        if self.values:
            data |= {
                "min": min(self.values),
                "median": statistics.median(self.values),
                "max": max(self.values),
            }
        return data


@dataclass(frozen=True)
class Plan:
    intakes: int  # requests queued before a worker drains them
    rounds: int
    seconds: float  # each HTTP intake measurement
    steady: float  # seconds of texts at SMS_RATE, followed on /track
    cases: int  # stored cases under the console and /track (loaded once: one round)
    repeats: int  # requests per console page and /track over them

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(intakes=300, rounds=1, seconds=1.5, steady=2.0, cases=2000, repeats=3)
        return cls(intakes=20_000, rounds=3, seconds=5.0, steady=10.0, cases=1_000_000, repeats=40)


SMS_RATE = 200.0  # texts per second, steady, for SMS -> /track
PG_SCALE = ", PostgreSQL"  # the suffix of the large-store results taken on PostgreSQL


INTAKE = (
    ("sms", "signed SMS webhook (POST /sms/twilio)"),
    ("form", "web form, JSON answer (POST /submit)"),
)


async def _bench_intake(plan: Plan) -> list[Result]:
    results: list[Result] = []
    rounds = await intake_rounds(plan.rounds, plan.seconds)
    for path, label in INTAKE:
        ours = Result(f"{label}: ours", "req/s", [r[f"{path}:ours"] for r in rounds])
        bare = Result(f"{label}: bare aiohttp", "req/s", [r[f"{path}:bare"] for r in rounds])
        ratio = Result(
            f"{label}: ratio", "x", [r[f"{path}:ours"] / r[f"{path}:bare"] for r in rounds]
        )
        # The servers' CPU per request (ours with its redis-server): what a missed ratio is
        # made of, whichever side the client (on the same cores) held back.
        cpu = f"{label}: server CPU per request"
        results += [
            ours,
            bare,
            ratio,
            Result(f"{cpu}, ours", "µs", [r[f"{path}:ours:cpu"] for r in rounds]),
            Result(f"{cpu}, bare aiohttp", "µs", [r[f"{path}:bare:cpu"] for r in rounds]),
        ]
    return results


async def _bench_latency(plan: Plan) -> list[Result]:
    rounds = await latency_rounds(plan.rounds, SMS_RATE, plan.steady)
    label = f"SMS -> visible on /track, {SMS_RATE:g}/s steady"
    return [
        Result(f"{label}: p50", "ms", [r["p50"] for r in rounds]),
        Result(f"{label}: p99", "ms", [r["p99"] for r in rounds]),
    ]


@asynccontextmanager
async def _postgres(postgres_url: str | None) -> AsyncIterator[tuple[str | None, str]]:
    """A PostgreSQL server to make databases on: `postgres_url`, or a throwaway cluster of
    the installed binaries; without either, None and why."""
    if postgres_url is not None:
        yield postgres_url, ""
        return
    try:
        cluster = await asyncio.to_thread(PostgresCluster.start)
    except (RuntimeError, OSError) as exc:
        yield None, f"skipped: {exc}"
        return
    try:
        yield cluster.url("postgres"), ""
    finally:
        await asyncio.to_thread(cluster.stop)


async def _bench_scale(plan: Plan, postgres_url: str | None) -> list[Result]:
    def results(found: dict[str, float], engine: str) -> list[Result]:
        return [
            Result(f"{name}, {plan.cases:,} cases{engine}", "MB" if name == "serve RSS" else "ms",
                   [value])
            for name, value in found.items()
        ]  # fmt: skip

    measured = results(await measure(plan.cases, plan.repeats), "")
    async with _postgres(postgres_url) as (server, why):
        if server is None:
            name = f"console, reports and /track, {plan.cases:,} cases{PG_SCALE}"
            return [*measured, Result(name, "ms", note=why)]
        return measured + results(await measure(plan.cases, plan.repeats, server), PG_SCALE)


async def _bench(plan: Plan, postgres_url: str | None) -> list[Result]:
    results = {
        (engine, workers): Result(f"router drain, {workers} worker(s), {label}", "cases/s")
        for workers in (1, 2)
        for engine, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL"))
    }
    async with _postgres(postgres_url) as (server, why):
        for round_no in range(plan.rounds):  # interleaved: one of each per round
            for (engine, workers), result in results.items():
                if engine == "postgresql" and server is None:
                    result.note = why
                    continue
                rate = await drain_round(engine, plan.intakes, server, round_no, workers)
                result.values.append(rate)
                log.info("%s round %d: %.0f %s", result.name, round_no + 1, rate, result.unit)
    return list(results.values())


async def _awaited(part: Callable[[], Awaitable[list[Result]]]) -> list[Result]:
    return await part()


def _table(results: list[Result], plan: Plan, out: TextIO) -> None:
    out.write(
        f"{plan.rounds} round(s), interleaved; HTTP intake {plan.seconds:g} s per side,"
        f" router drain {plan.intakes} requests per round; SMS -> /track {plan.steady:g} s at"
        f" {SMS_RATE:g} texts/s against `serve --demo` (its worker child)\n\n"
    )
    out.write(f"| {'measurement':<60} | {'min':>8} | {'median':>8} | {'max':>8} | unit |\n")
    out.write(f"|{'-' * 62}|{'-' * 10}|{'-' * 10}|{'-' * 10}|------|\n")
    for result in results:
        if not result.values:
            out.write(f"| {result.name:<60} | {result.note} |\n")
            continue
        s = result.summary()
        digits = 2 if result.unit == "x" else 0
        out.write(
            f"| {result.name:<60} | {s['min']:>8.{digits}f} | {s['median']:>8.{digits}f}"
            f" | {s['max']:>8.{digits}f} | {result.unit} |\n"
        )


def run(
    *, quick: bool, as_json: bool, postgres_url: str | None, only: list[str] | None = None
) -> int:
    """`postgres_url`: a server where bench may create and drop its own databases; without
    it, bench starts a throwaway cluster when PostgreSQL's binaries are installed. `only`:
    the parts to measure (default: all)."""
    plan = Plan.of(quick)
    parts: dict[str, Callable[[], Awaitable[list[Result]]]] = {
        "intake": lambda: _bench_intake(plan),
        "latency": lambda: _bench_latency(plan),
        "drain": lambda: _bench(plan, postgres_url),
        "scale": lambda: _bench_scale(plan, postgres_url),
    }
    results: list[Result] = []
    for name, part in parts.items():
        if not only or name in only:
            results += asyncio.run(_awaited(part))
    if as_json:
        json.dump(
            {"plan": asdict(plan), "results": [r.summary() for r in results]},
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        _table(results, plan, sys.stdout)
    return 0
