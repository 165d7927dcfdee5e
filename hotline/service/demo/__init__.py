"""The bundled demo point (point.toml) and a few sample requests, so a first run shows something."""

from __future__ import annotations

from datetime import datetime, time, timedelta

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


_RECEPTION_ASKS = [
    ("平湖嘉创精密机械有限公司", "园区企业招工难，希望联络点协调职业技能培训进园区。"),
    ("新仓智谷电子科技有限公司", "希望简化研发费用加计扣除的申报材料。"),
    ("嘉兴恒创新材料有限公司", "厂区周边夜间照明不足，员工下班出行不安全。"),
]


async def seed_demo_receptions(
    store: Store, queue: IntakeSink, config: PointConfig, now: datetime
) -> list[int]:
    """Two themed receptions: one held two days ago, with the requests raised there (entered
    by a deputy, through ordinary intake), and one in five days with two businesses signed up.
    Returns their ids."""
    tz = config.point.timezone
    today = now.astimezone(tz).date()
    held_on = datetime.combine(today - timedelta(days=2), time(14, 30), tzinfo=tz)
    held = await store.receptions.add(
        {"topic": "助企帮扶主题接待", "details": "围绕用工、融资和园区配套听取企业意见。",
         "place": "嘉创智谷联络点二楼会议室", "starts_at": held_on,
         "ends_at": held_on + timedelta(hours=2), "deputies": ("chen", "zhu"),
         "departments": ("budget", "urban"), "capacity": 30},
        "shen", now - timedelta(days=14),
    )  # fmt: skip
    for i, (company, text) in enumerate(_RECEPTION_ASKS):
        intake = Intake(
            key=f"demo:reception:{i}", channel="walk-in", text=text,
            received_at=held_on + timedelta(minutes=20 * (i + 1)), language="zh-CN",
            company=company, taken_by="chen", reception_id=held,
        )  # fmt: skip
        await queue.submit(intake)
    next_on = datetime.combine(today + timedelta(days=5), time(9, 30), tzinfo=tz)
    upcoming = await store.receptions.add(
        {"topic": "优化营商环境主题接待", "details": "市场监管、税务部门到场，现场答复企业关切。",
         "place": "嘉创智谷联络点二楼会议室", "starts_at": next_on,
         "ends_at": next_on + timedelta(hours=2), "deputies": ("shen", "wang"),
         "departments": ("budget",), "capacity": 20},
        "shen", now,
    )  # fmt: skip
    for n, (company, text) in enumerate(_RECEPTION_ASKS[:2]):
        signup = {"company": company, "contact": "经办人", "phone": f"+861390000010{n}",
                  "raise_text": text, "language": "zh-CN"}  # fmt: skip
        await store.receptions.sign_up(upcoming, signup, now)
    return [held, upcoming]


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
