"""The console and /track over a large store: `hotline serve --demo --no-worker` on a SQLite
file (or a PostgreSQL database, vacuumed and analyzed after the load as autovacuum would leave
it) holding `count` cases (a million in the full run), two years of a busy point — the last
week's requests still open, the rest closed — and a signed-in member asking for each list,
search and status page in turn. Reports p50 and p95 per page, and the serve process's RSS
after it has answered them all."""

from __future__ import annotations

import logging
import os
import random
import re
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg

from hotline.bench.intake import serve
from hotline.bench.postgres import database_url, recreate
from hotline.bench.processes import stop
from hotline.service.cases import utcnow
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.demo.history import made_up
from hotline.service.duty import Schedule
from hotline.service.settings import DEMO_PASSWORD
from hotline.service.store import Store

log = logging.getLogger(__name__)

CHUNK = 5000
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_OLDER = re.compile(r'<a href="([^"]+)" rel="next">')
PHRASES = (
    "厂区东门路灯不亮，夜班工人出入不便",
    "园区道路拥堵，上下班高峰车辆排长队",
    "企业用工缺口大，希望组织专场招聘会",
    "融资贷款贴息政策何时落实，申请材料太多",
    "雨污管网堵塞，暴雨后厂门口积水严重",
    "停电通知太晚，生产线来不及安排",
    "公交线路班次少，员工通勤不方便",
    "希望简化环评审批流程，缩短办理时间",
    "人才公寓申请条件不清楚，希望公开细则",
    "园区食堂价格上涨，职工反映负担重",
)
RARE = "危化品仓库消防通道被占"  # in one case in 10,000: a search that finds few
SPAN = timedelta(days=730)


def _companies() -> list[str]:
    kinds = ("科技", "机械", "纺织", "电子", "物流")
    return [f"嘉兴{kind}{n}号有限公司" for n in range(40) for kind in kinds]


async def load(store: Store, count: int, seed: int = 7, now: datetime | None = None) -> list[str]:
    """`count` cases over the two years before `now`, newest last, each as far along as its
    age allows (first response, referral, resolution, rating: what the reports count);
    returns their codes. Texts and companies are the bench's own, for its searches."""
    config = load_config(demo_config_path())
    companies = _companies()
    rng = random.Random(seed)  # noqa: S311 - made-up data, the same each run
    now = now or utcnow()
    history = made_up(config, count, SPAN, now, seed=seed, with_events=False, prefix="bench")
    codes: list[str] = []
    batch: list[dict[str, Any]] = []
    for n, past in enumerate(history):
        text = RARE if n % 10_000 == 5_000 else f"{rng.choice(PHRASES)}（第{n}号）"
        batch.append(past.row | {"text": text, "company": rng.choice(companies)})
        codes.append(past.row["code"])
        if len(batch) == CHUNK:
            await store.cases.load_history(batch)
            batch = []
            if (n + 1) % 100_000 == 0:
                log.info("loaded %d of %d cases", n + 1, count)
    if batch:
        await store.cases.load_history(batch)
    return codes


def _queries(codes: list[str]) -> dict[str, str]:
    code = codes[len(codes) // 2]
    company = quote(_companies()[3])
    return {
        "console: mine": "/console/cases?view=mine",
        "console: open": "/console/cases?view=open",
        "console: overdue": "/console/cases?view=overdue",
        "console: all": "/console/cases?view=all",
        "console: search by code": f"/console/cases?view=all&q={code}",
        "console: search by company": f"/console/cases?view=all&q={company}",
        "console: search by text, common": f"/console/cases?view=all&q={quote('路灯不亮')}",
        "console: search by text, rare": f"/console/cases?view=all&q={quote('消防通道')}",
        # Two characters, in one case in 10,000 (RARE's first two): the index of pairs.
        "console: search of two characters, rare": f"/console/cases?view=all&q={quote('危化')}",
    }


async def _timed(session: aiohttp.ClientSession, url: str) -> tuple[float, str]:
    began = time.perf_counter()
    async with session.get(url) as resp:
        body = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"{url}: {resp.status} {body[:300]}")
    return (time.perf_counter() - began) * 1000, body


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


async def measure(count: int, repeats: int, postgres: str | None = None) -> dict[str, float]:
    """p50 and p95 (ms) per page, and serve's RSS (MB), over `count` stored cases: in a
    SQLite file, or in a database of bench's own on the PostgreSQL server `postgres`."""
    database = f"hotline_bench_scale_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
        base = Path(tmp)
        (base / "data").mkdir()
        target = f"sqlite:///{base / 'data' / 'hotline.sqlite3'}"
        if postgres is not None:
            await recreate(postgres, database)
            target = database_url(postgres, database)
        try:
            codes = await _loaded(target, count)
            if postgres is not None:
                await _vacuumed(target)
            return await _measured(base, target if postgres else None, codes, repeats)
        finally:
            if postgres is not None:
                await recreate(postgres, database, drop_only=True)


async def _loaded(target: str, count: int) -> list[str]:
    store = await Store.open(target)
    try:
        await store.accounts.sync(load_config(demo_config_path()).members)
        began = time.perf_counter()
        codes = await load(store, count)
        log.info("%d cases loaded in %.0f s", count, time.perf_counter() - began)
    finally:
        await store.close()
    return codes


async def _vacuumed(url: str) -> None:
    """As autovacuum leaves a loaded table: statistics taken, the visibility map set."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _measured(
    base: Path, url: str | None, codes: list[str], repeats: int
) -> dict[str, float]:
    server = await serve(base, worker=False, database_url=url)
    results: dict[str, float] = {}
    try:
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from 127.0.0.1
        async with aiohttp.ClientSession(base_url=server.base, cookie_jar=jar) as session:
            await _sign_in(session, _on_duty(utcnow()))
            queries = _queries(codes)
            _, first = await _timed(session, queries["console: all"])
            if 'id="duty-banner"' not in first:
                log.warning("the console is measured without the on-duty banner")
            older = _OLDER.search(first)
            if older:
                queries["console: all, next page"] = older.group(1).replace("&amp;", "&")
            rng = random.Random(3)  # noqa: S311 - which codes to look up
            track = [f"/track/{rng.choice(codes)}" for _ in range(repeats)]
            timings: dict[str, list[float]] = {name: [] for name in [*queries, "/track"]}
            for round_no in range(repeats):  # interleaved: one of each per round
                for name, url in queries.items():
                    timings[name].append((await _timed(session, url))[0])
                timings["/track"].append((await _timed(session, track[round_no]))[0])
            for name, values in timings.items():
                results[f"{name}: p50"] = statistics.median(values)
                results[f"{name}: p95"] = _p95(values)
        results |= await _reports(server.base, repeats)
        results["serve RSS"] = _rss_mb(server.process.pid)
    finally:
        await stop(server.process)
    return results


def _on_duty(now: datetime) -> str:
    """The member on duty at `now`, as the console is measured: the one who reads it most,
    and whose pages also carry the banner of what they hold (which another member's do
    not, so measuring as one fixed member depended on the hour of the run)."""
    config = load_config(demo_config_path())
    member = Schedule(config.duty, config.point.timezone).on_duty(now)
    return member or config.duty.standing_head


async def _sign_in(session: aiohttp.ClientSession, member: str) -> None:
    page = await (await session.get("/console/login")).text()
    token = _TOKEN.search(page)
    assert token, "no sign-in form"
    form = {"csrf_token": token.group(1), "member": member, "password": DEMO_PASSWORD}
    async with session.post("/console/login", data=form) as resp:
        if "/console/login" in str(resp.url):
            raise RuntimeError(f"could not sign in: {resp.status}")


async def _reports(base: str, repeats: int) -> dict[str, float]:
    """The whole point's reports, as the standing head asks for them: this year's first
    (every month counted), then again (past months kept: what the workers keep ready),
    and last month's printable summary."""
    results: dict[str, float] = {}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as session:
        await _sign_in(session, "shen")
        year = "/console/reports?period=this-year"
        results["reports: this year, first (every month counted)"] = (await _timed(session, year))[
            0
        ]
        timings: dict[str, list[float]] = {"reports: this year": [], "reports: monthly": []}
        for _ in range(max(3, repeats // 10)):
            timings["reports: this year"].append((await _timed(session, year))[0])
            monthly = "/console/reports/monthly"
            timings["reports: monthly"].append((await _timed(session, monthly))[0])
        for name, values in timings.items():
            results[f"{name}: p50"] = statistics.median(values)
            results[f"{name}: max"] = max(values)
    return results


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")
