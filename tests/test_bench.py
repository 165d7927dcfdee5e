"""`hotline bench --quick` runs end to end on this machine: its own Redis, SQLite and (with
PostgreSQL's binaries installed) a throwaway cluster, a real worker process per round. No
number is asserted: the machine is noisy, and BENCHMARKS.md is where results are read."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hotline.bench.postgres import binaries

pytestmark = pytest.mark.timeout(300)


def test_quick_bench_measures_the_drain_and_a_large_store_on_both_engines() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    done = subprocess.run(
        [sys.executable, "-m", "hotline", "bench", "--quick", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["plan"] == {
        "intakes": 300, "rounds": 1, "seconds": 1.5, "steady": 2.0, "cases": 2000, "repeats": 3
    }  # fmt: skip
    results = {r["name"]: r for r in report["results"]}
    for label in ("signed SMS webhook (POST /sms/twilio)", "web form, JSON answer (POST /submit)"):
        for side in ("ours", "bare aiohttp", "ratio", "server CPU per request, ours",
                     "server CPU per request, bare aiohttp"):  # fmt: skip
            assert len(results[f"{label}: {side}"]["values"]) == 1
            assert results[f"{label}: {side}"]["values"][0] > 0
    for share in ("p50", "p99"):
        waits = results[f"SMS -> visible on /track, 200/s steady: {share}"]["values"]
        assert len(waits) == 1 and waits[0] > 0
    for workers in (1, 2):
        sqlite = results[f"router drain, {workers} worker(s), SQLite"]
        assert len(sqlite["values"]) == 1 and sqlite["values"][0] > 0
        postgres = results[f"router drain, {workers} worker(s), PostgreSQL"]
        if binaries() is None and not os.environ.get("CI"):
            assert postgres["note"].startswith("skipped")
        else:
            assert len(postgres["values"]) == 1 and postgres["values"][0] > 0
    pages = ("mine", "open", "overdue", "all", "all, next page", "search by code",
             "search by company", "search by text, common", "search by text, rare",
             "search of two characters, rare")  # fmt: skip
    postgres_too = binaries() is not None or os.environ.get("CI")
    for engine in ("", ", PostgreSQL") if postgres_too else ("",):
        for page in [f"console: {p}" for p in pages] + ["/track"]:
            for share in ("p50", "p95"):
                timed = results[f"{page}: {share}, 2,000 cases{engine}"]
                assert timed["unit"] == "ms" and len(timed["values"]) == 1
                assert timed["values"][0] > 0
        rss = results[f"serve RSS, 2,000 cases{engine}"]
        assert rss["unit"] == "MB" and 30 < rss["values"][0] < 2000
        year = results[f"reports: this year: p50, 2,000 cases{engine}"]
        assert year["values"][0] > 0
    if not postgres_too:
        skipped = results["console, reports and /track, 2,000 cases, PostgreSQL"]
        assert skipped["note"].startswith("skipped")
