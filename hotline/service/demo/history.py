"""Made-up past requests, as they ended up: the demo point's last few months (so the first run
shows real reports and charts) and `hotline bench`'s million. The same `rng` seed gives the
same history; times are spread evenly over `span` before `now`, the newest still open."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hotline.service.caselists import due_times
from hotline.service.cases import Status, code_for, to_utc_text
from hotline.service.config import PointConfig

# Requests a business in the park might send, per topic (the demo point's categories).
REQUESTS: dict[str, tuple[str, ...]] = {
    "business-support": (
        "企业用工缺口大，希望组织专场招聘会",
        "技改项目补助申报材料多，希望有人指导填报",
    ),
    "business-environment": (
        "希望简化环评审批流程，缩短办理时间",
        "消防验收排期太长，影响新厂房投产",
    ),
    "foreign-trade": (
        "出口退税到账慢，资金周转压力大",
        "海外展会补贴政策不清楚，希望公开申请细则",
    ),
    "circulation": (
        "园区道路拥堵，上下班高峰车辆排长队",
        "货运车辆进出园区限行时间不合理",
    ),
    "projects": (
        "新厂房用电增容申请迟迟未批",
        "项目用地规划调整进度慢，希望协调",
    ),
    "consumption": (
        "园区食堂价格上涨，职工反映负担重",
        "希望在园区设立便民超市和快递点",
    ),
    "safety": (
        "厂区东门路灯不亮，夜班工人出入不便",
        "雨污管网堵塞，暴雨后厂门口积水严重",
    ),
    "finance": (
        "融资贷款贴息政策何时落实，申请材料太多",
        "小微企业首贷难，希望银行来园区对接",
    ),
    "other": (
        "公交线路班次少，员工通勤不方便",
        "人才公寓申请条件不清楚，希望公开细则",
    ),
}
COMPANIES = tuple(
    f"平湖{place}{kind}有限公司"
    for place in ("嘉创", "新仓", "智谷", "乍浦", "当湖", "钟埭")
    for kind in ("精密机械", "电子科技", "纺织", "新材料", "物流", "食品")
)
SOURCE_TAGS = ("poster-gate", "canteen", "wechat")
PRESIDIUM_REASONS = (
    "涉及多个部门，需由主席团统筹推动",
    "园区企业普遍反映，建议列入主席团工作建议",
    "需县级层面政策调整，提请主席团研究",
)
# (channel, weight): the web form from the QR posters, texts, the kiosk, walk-ins.
CHANNELS = (("web", 5), ("sms", 3), ("kiosk", 2), ("walk-in", 1))
RATINGS = ((5, 55), (4, 25), (3, 10), (2, 6), (1, 4))


@dataclass
class PastCase:
    """One made-up case: its columns as stored, and its events as (at, kind, status, actor,
    detail) in order."""

    row: dict[str, Any]
    events: list[tuple[datetime, str, str, str | None, dict[str, Any]]] = field(
        default_factory=list
    )


def _pick(rng: random.Random, weighted: tuple[tuple[Any, int], ...]) -> Any:
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def made_up(
    config: PointConfig,
    count: int,
    span: timedelta,
    now: datetime,
    *,
    seed: int = 7,
    presidium_every: int = 30,
    with_events: bool = True,
    prefix: str = "history",
) -> Iterator[PastCase]:
    """`count` cases received over `span` before `now`, oldest first. Those of the last
    three days are still being worked on; older ones mostly went the whole way (first
    response, often a referral, resolution, a rating) and some are late, reopened,
    withdrawn or rejected. Every `presidium_every`-th went to the presidium."""
    rng = random.Random(seed)  # noqa: S311 - made-up data, the same each run
    members = [m.id for m in config.members if m.role != "admin"] or [config.duty.standing_head]
    categories = {c.code: c for c in config.categories}
    topics: list[str | None] = [code for code in REQUESTS if code in categories]
    topics = topics or [None]
    for n in range(count):
        at = now - span + span * ((n + rng.random()) / count)
        yield _one(config, rng, n, at, now, members, topics, presidium_every, with_events, prefix)


def _one(
    config: PointConfig,
    rng: random.Random,
    n: int,
    at: datetime,
    now: datetime,
    members: list[str],
    topics: list[str | None],
    presidium_every: int,
    with_events: bool,
    prefix: str,
) -> PastCase:
    category = rng.choice(topics)
    channel = _pick(rng, CHANNELS)
    texts = REQUESTS.get(category or "other", REQUESTS["other"])
    member = rng.choice(members)
    respond, resolve = config.targets_for(category)
    key = f"{prefix}:{n}"
    respond_due, resolve_due = due_times(config, category, at, None)
    row: dict[str, Any] = {
        "code": code_for(prefix.encode(), key, 0),
        "intake_key": key,
        "channel": channel,
        "status": str(Status.ASSIGNED),
        "text": rng.choice(texts),
        "language": "zh-CN",
        "category": category,
        "company": rng.choice(COMPANIES) if rng.random() < 0.8 else None,
        "submitter_name": None,
        "submitter_phone": f"+86139{rng.randrange(10**8):08d}" if channel == "sms" else None,
        "source_tag": rng.choice(SOURCE_TAGS) if channel == "web" else None,
        "assignee_id": member,
        "received_at": to_utc_text(at),
        "created_at": to_utc_text(at),
        "updated_at": to_utc_text(at),
        "waiting_since": to_utc_text(at),
        "first_response_due": to_utc_text(respond_due),
        "resolution_due": to_utc_text(resolve_due),
    }
    past = PastCase(row)
    log = past.events if with_events else []
    log.append((at, "received", "received", None, {}))
    log.append((at, "assigned", "assigned", None, {"to": member, "reason": "on-duty"}))
    age = now - at
    cursor = at

    def step(after: timedelta) -> datetime | None:
        """Move the story on by `after`; None when that would be in the future."""
        nonlocal cursor
        if cursor + after >= now:
            return None
        cursor += after
        row["updated_at"] = to_utc_text(cursor)
        return cursor

    if n % 97 == 13 and age > timedelta(days=1):
        row["status"] = "rejected"
        row["closed_at"] = to_utc_text(at + timedelta(hours=1))
        log.append((at + timedelta(hours=1), "reject", "rejected", member, {"text": "重复提交"}))
        return past
    if n % 89 == 7 and age > timedelta(days=1):
        row["status"] = "withdrawn"
        row["closed_at"] = to_utc_text(at + timedelta(hours=2))
        log.append(
            (at + timedelta(hours=2), "withdraw", "withdrawn", member, {"text": "已自行解决"})
        )
        return past
    # A first response: mostly within the target, now and then late.
    late = rng.random() < 0.08
    took = respond * (1.2 + rng.random() * 2) if late else respond * rng.random() * 0.9
    if (first := step(took)) is None:
        return past
    row |= {"status": "acknowledged", "first_response_at": to_utc_text(first)}
    log.append((first, "acknowledge", "acknowledged", member, {}))
    if n % presidium_every == presidium_every // 2:
        row["presidium"] = 1
        reason = PRESIDIUM_REASONS[n % len(PRESIDIUM_REASONS)]
        log.append((first, "presidium", "acknowledged", member, {"text": reason}))
    topic = config.category(category) if category else None
    if topic is not None and topic.department and rng.random() < 0.5:
        due = cursor + timedelta(days=10)
        row |= {
            "status": "referred",
            "department_id": topic.department,
            "referral_due": to_utc_text(due),
        }
        log.append((cursor, "refer", "referred", member,
                    {"department": topic.department, "due": to_utc_text(due)}))  # fmt: skip
        answered = step(timedelta(days=rng.uniform(1, 13)))
        if answered is None:
            return past
        row |= {"status": "responded", "referral_answered_at": to_utc_text(answered)}
        log.append((answered, "answer", "responded", member, {"text": "部门已答复"}))
    late = rng.random() < 0.1
    took = resolve * (1 + rng.random()) if late else resolve * rng.uniform(0.05, 0.9)
    if (resolved := step(took)) is None:
        return past
    row |= {
        "status": "resolved",
        "resolved_at": to_utc_text(resolved),
        "rating_requested_at": to_utc_text(resolved),
        "outcome": "已协调解决，并向企业反馈办理结果",
    }
    log.append((resolved, "resolve", "resolved", member, {"text": row["outcome"]}))
    if rng.random() < 0.25:  # no rating: closed after the wait, if that has passed
        if (closed := step(config.targets.rating_wait)) is not None:
            row |= {"status": "closed", "closed_at": to_utc_text(closed)}
            log.append((closed, "auto-close", "closed", None, {}))
        return past
    rating = _pick(rng, RATINGS)
    if (rated := step(timedelta(hours=rng.uniform(1, 48)))) is None:
        return past
    row |= {"rating": rating, "rated_at": to_utc_text(rated)}
    if rating > 2:
        row |= {"status": "closed", "closed_at": to_utc_text(rated)}
        log.append((rated, "rated", "closed", None, {"rating": rating, "source": "sms"}))
        return past
    head = config.duty.standing_head
    row |= {"status": "reopened", "resolved_at": None, "reopens": 1, "assignee_id": head}
    log.append((rated, "rated", "reopened", None, {"rating": rating, "escalated_to": head}))
    if (again := step(timedelta(days=rng.uniform(1, 5)))) is None:
        return past
    # Resolved again, it asks for a new rating (as casework does).
    row |= {"status": "resolved", "resolved_at": to_utc_text(again),
            "rating_requested_at": to_utc_text(again)}  # fmt: skip
    log.append((again, "resolve", "resolved", head, {"text": "点长再次协调，问题已解决"}))
    return past
