"""The bundled demo point (point.toml) and a few sample requests, so a first run shows something."""

from __future__ import annotations

from datetime import datetime, timedelta

from hotline.service.cases import Intake
from hotline.service.config import PointConfig
from hotline.service.demo.history import made_up
from hotline.service.ports import IntakeSink
from hotline.service.store import Store

HISTORY = timedelta(days=120)

_SAMPLES = [
    (
        "web", "zh-CN", "finance", "平湖嘉创精密机械有限公司", "poster-gate", timedelta(hours=-30),
        "我们是园区内的小微企业，想了解最新的稳经济贷款贴息政策，怎么申请？",
    ),
    (
        "sms", "zh-CN", "safety", None, None, timedelta(hours=-5),
        "3号楼东侧消防通道被货车长期占用，夜间有安全隐患，请协调处理。",
    ),
    (
        "web", "en", "foreign-trade", "Xincang Zhigu Electronics", "canteen", timedelta(hours=-2),
        "Our export orders are held up by customs paperwork. Is there a fast lane for us?",
    ),
    (
        "kiosk", "zh-CN", "circulation", None, None, timedelta(minutes=-20),
        "园区到高速口的货运道路早高峰拥堵严重，建议错峰或增设掉头车道。",
    ),
]  # fmt: skip


async def seed_demo_history(store: Store, config: PointConfig, now: datetime) -> list[str]:
    """Four months of the point's past requests (48, twelve of them escalated to the
    presidium, as in the article), stored as they ended up, with their events: the first
    run shows real reports. Returns their codes."""
    past = list(made_up(config, 48, HISTORY, now, seed=2026, presidium_every=4, prefix="demo-past"))
    await store.cases.load_history([p.row for p in past], [p.events for p in past])
    return [p.row["code"] for p in past]


async def seed_demo_cases(queue: IntakeSink, now: datetime) -> list[str]:
    """Submit the sample requests through ordinary intake; returns their case codes."""
    codes = []
    for i, (channel, language, category, company, tag, ago, text) in enumerate(_SAMPLES):
        intake = Intake(
            key=f"demo:{i}",
            channel=channel,
            text=text,
            received_at=now + ago,
            language=language,
            category=category,
            company=company,
            source_tag=tag,
        )
        codes.append((await queue.submit(intake)).code)
    return codes
