"""Holidays beyond the package's data: the point's own days off and make-up workdays in the
roster (each day off saying why and who says so), and the console's banner for heads and
admins 60 days before the known calendar runs out (the test clock: 2026-11-24)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from hotline.service.config import demo_config_path
from hotline.service.duty import PACKAGE_KNOWS_UNTIL
from tests.helpers import Client
from tests.web.console_helpers import console_token, give_password, sign_in

DAYS = """
[[duty.holiday]]
date = "2026-11-26"
name = "园区停电检修"

[[duty.workday]]
date = "2026-11-28"
name = "检修补班"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    demo = demo_config_path().read_text("utf-8")
    path = tmp_path / "point.toml"
    path.write_text(
        demo.replace('ack_within = "30m"', 'ack_within = "30m"\nholidays = "cn"') + DAYS
    )
    return path


async def as_member(client: Client, app: web.Application, member: str) -> None:
    await give_password(app, member)
    assert (await sign_in(client, member)).status == 303


async def test_the_roster_says_why_a_day_is_off(client: Client, app: web.Application) -> None:
    await as_member(client, app, "shen")
    week = await (await client.get("/console/duty?date=2026-11-24")).text()
    assert "休息日：园区停电检修（联络点设定）" in week
    assert "调休上班：检修补班（联络点设定）" in week
    assert week.count(">周末<") == 1  # Sunday; the Saturday is worked
    october = await (await client.get("/console/duty?view=month&date=2026-10-05")).text()
    assert "休息日：国庆节（国家法定节假日安排）" in october
    assert "调休上班（国家法定节假日安排）" in october  # 2026-10-10, a Saturday worked


async def test_heads_are_warned_before_the_calendar_runs_out(
    client: Client, app: web.Application
) -> None:
    assert PACKAGE_KNOWS_UNTIL.isoformat() == "2026-12-31", "update the test's dates"
    await as_member(client, app, "chen")  # a representative: not theirs to fix
    assert 'id="calendar-ends"' not in await (await client.get("/console/cases")).text()
    await client.post("/console/logout", data={"csrf_token": await console_token(client)})
    await as_member(client, app, "shen")
    page = await (await client.get("/console/cases")).text()
    banner = page.split('id="calendar-ends">')[1].split("</p>")[0]
    assert "2026-12-31" in banner and "[[duty.holiday]]" in banner
