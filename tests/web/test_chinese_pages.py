"""No English left on the Chinese pages: every page a person reads (public, kiosk, console
as an admin sees it) rendered in zh-CN, with a case that went through every kind of event,
and every text the point sends, in Chinese. A Latin word outside the allow-list (codes,
addresses, numbers, proper nouns and the names of standards) fails the test."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from datetime import time as day_time
from html.parser import HTMLParser

from aiohttp import web

from hotline import appkeys
from hotline.service.cases import Intake
from hotline.service.casework import Request
from hotline.service.demo import seed_demo_history
from hotline.service.demo.history import SOURCE_TAGS
from hotline.service.inbound import InboundText
from hotline.service.links import Links
from hotline.service.receptions import Plan
from hotline.service.workflow import Action
from tests.helpers import Client, Clock, route_all
from tests.web.console_helpers import console_token, give_password, sign_in

# Words that are Latin in a Chinese text too: standards, formats, product names, units of
# data, and the point's own codes (member ids, topic codes, tags...) added per test.
ALLOWED = {
    "SMS", "API", "CSV", "XLSX", "Excel", "QR", "iCalendar", "ICS", "URL", "JSON", "XML",
    "Open311", "GeoReport", "HTTP", "HTTPS", "https", "http", "Bearer", "Token", "token",
    "POST", "GET", "HMAC", "SHA", "UTF", "KiB", "MB", "ID", "id", "CODE", "STOP", "START", "TD",
    "HELP", "STATUS", "Twilio", "PDF", "A4", "webhook", "Webhook", "www", "localhost",
    "hl", "whsec", "evt", "read", "write", "example", "org", "com", "cn", "English", "api",
    "v1", "v2", "gate", "canteen", "building-3",  # the last: source tags' examples
}  # fmt: skip
LATIN = re.compile(r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]")
# A reception's entry (its deputies' and the heads') is read as a head, at the end.
SKIP = ("/api/", "/open311/", "/static", "/metrics", "/healthz", "/readyz", "/console/events",
        "/duty.ics", ".csv", ".xlsx", "/console/logout", "/entry")  # fmt: skip
VISIBLE_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


class _Text(HTMLParser):
    """What a reader sees: text outside <script>/<style>, and the attributes shown."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self.parts.append(value)
            if tag == "input" and name == "value" and ("type", "submit") in attrs and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def english_in(text: str, allowed: set[str]) -> list[str]:
    """Each Latin word not allowed, with what surrounds it (to find it)."""
    # Codes, URLs, e-mail addresses and ISO times are not words.
    text = re.sub(r"https?://\S+|\S+@\S+|\b[0-9A-Z]{7}\b|\d{4}-\d\d-\d\dT\S+", " ", text)
    text = " ".join(text.split())
    found: dict[str, str] = {}
    for match in LATIN.finditer(text):
        word = match.group()
        if word not in allowed and word.lower() not in allowed and word not in found:
            found[word] = text[max(0, match.start() - 25) : match.end() + 25]
    return [f"{word} «{context}»" for word, context in sorted(found.items())]


def page_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


async def rich_case(app: web.Application, clock: Clock) -> str:
    """A case that went through every kind of event the timeline shows."""
    text = "园区东门积水严重，货车无法进出。"
    intake = Intake("web:zh-pages", "web", text, clock(), "zh-CN", "safety",
                    company="平湖某某精密机械有限公司", phone="+8613900000009")  # fmt: skip
    code = (await app[appkeys.INTAKE].submit(intake)).code
    await route_all(app)
    clock.now += timedelta(hours=2)
    await app[appkeys.TIMED].escalate(clock())  # not acknowledged in time
    work, now = app[appkeys.CASEWORK], clock()
    config = app[appkeys.DIRECTORY].config
    for req in (
        Request(Action.REASSIGN, "shen", member="chen"),
        Request(Action.ACKNOWLEDGE, "chen"),
        Request(Action.NOTE, "shen", text="先联系物业"),
        Request(Action.REPLY, "shen", text="已联系物业抽水"),
        Request(Action.REFER, "shen", department=config.departments[0].id, due=now),
        Request(Action.ANSWER, "shen", text="城建部门已安排疏通"),
        Request(Action.PRESIDIUM, "shen", text="涉及多家企业"),
        Request(Action.RESOLVE, "shen", text="已疏通排水管"),
    ):
        await work.act(code, req, now)
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None
    await work.rate(case, 2, now, "web")  # a low rating reopens it
    return code


async def a_reception(app: web.Application, clock: Clock) -> int:
    """A themed reception this afternoon, one business signed up, one request raised."""
    tz = app[appkeys.DIRECTORY].config.point.timezone
    today = clock().astimezone(tz).date()
    starts = datetime.combine(today, day_time(15), tzinfo=tz)
    plan = Plan("优化营商环境主题接待", "听取企业意见", "联络点二楼会议室", starts,
                starts + timedelta(hours=2), ("chen",), ("budget",), 20)  # fmt: skip
    reception = await app[appkeys.RECEPTIONS].schedule(plan, "shen")
    found = await app[appkeys.STORE].receptions.get(reception)
    assert found is not None
    signup = {"company": "平湖某某精密机械有限公司", "contact": "李经理",
              "phone": "+8613900000011", "raise_text": "用工招聘"}  # fmt: skip
    await app[appkeys.RECEPTIONS].sign_up(found, signup, "zh-CN")
    intake = Intake("walk-in:zh-pages", "walk-in", "融资难", clock(), "zh-CN",
                    taken_by="chen", reception_id=reception)  # fmt: skip
    await app[appkeys.INTAKE].submit(intake)
    await route_all(app)
    return reception


async def test_every_page_reads_in_chinese(client: Client, clock: Clock) -> None:
    app = client.app
    config = app[appkeys.DIRECTORY].config
    await seed_demo_history(app[appkeys.STORE], config, clock())
    code = await rich_case(app, clock)
    _, device = await app[appkeys.KIOSKS].register("大厅", "shen", clock())
    await app[appkeys.KIOSKS].add_tag("poster", "东门海报", "shen", clock())
    await app[appkeys.TOKENS].create("town-office", "read", "shen", clock())
    await app[appkeys.WEBHOOKS].register("city", "https://city.example/h", "", "shen", clock())
    reception = await a_reception(app, clock)
    allowed = ALLOWED | {m.id for m in config.members} | {c.code for c in config.categories}
    allowed |= {d.id for d in config.departments} | {"admin", "town-office", "city", "city-12345"}
    allowed |= {"poster", *SOURCE_TAGS}  # source tags are Latin by design
    allowed |= set(LATIN.findall(" ".join(config.point.sms_numbers)))
    zh = {"Accept-Language": "zh-CN"}
    found: dict[str, list[str]] = {}

    async def read(path: str, **headers: str) -> None:
        resp = await client.get(path, headers=zh | headers)
        assert resp.status == 200, (path, resp.status)
        if resp.content_type != "text/html":
            return
        words = english_in(page_text(await resp.text()), allowed)
        if words:
            found[path] = words

    for path in ("/", "/submit", f"/track/{code}", "/stats", "/console/login", "/receptions",
                 f"/receptions/{reception}"):  # fmt: skip
        await read(path)
    await read("/kiosk", Cookie=f"hotline_kiosk={device}")
    await read(f"/kiosk/slip/{code}", Cookie=f"hotline_kiosk={device}")
    await give_password(app, "admin")
    assert (await sign_in(client, "admin", headers=zh)).status == 303
    for resource in app.router.resources():
        info = resource.get_info()
        raw = info.get("path") or info.get("formatter") or info.get("prefix", "")
        gets = any(route.method == "GET" for route in resource)
        if not gets or not raw.startswith("/console") or any(s in raw for s in SKIP):
            continue
        path = raw.format(code=code, key="chen", tag="poster", id=reception) if "{" in raw else raw
        if "{key}" in raw:
            path = _entry(path, config)
        await read(path)
    for path in ("/console/cases?view=all", "/console/reports?period=this-year",
                 "/console/reports/monthly", "/console/duty?view=month",
                 f"/console/reports?reception={reception}",
                 f"/console/cases?view=all&reception={reception}"):  # fmt: skip
        await read(path)
    # Refused console forms name the field in Chinese.
    csrf = await console_token(client, "/console/kiosks")
    for path, form in (
        ("/console/kiosks", {"name": ""}),
        ("/console/kiosks", {"revoke": "999"}),
        ("/console/posters", {"tag": "Not A Tag", "label": "东门"}),
        ("/console/posters", {"tag": "gate2", "label": ""}),
        ("/console/tokens", {"name": "x y", "scope": "admin"}),
        ("/console/webhooks", {"name": "p", "url": "ftp://x"}),
        ("/console/webhooks", {"revoke": "nobody"}),
        ("/console/receptions", {"topic": "", "date": "2026-13-01", "capacity": "x"}),
    ):
        resp = await client.post(path, data=form | {"csrf_token": csrf}, headers=zh)
        assert resp.status == 400, (path, form, resp.status)
        words = english_in(page_text(await resp.text()), allowed | {"Not", "A", "Tag", "ftp"})
        if words:
            found[f"POST {path} {form}"] = words
    await give_password(app, "shen")  # a head enters the requests raised at a reception
    assert (await sign_in(client, "shen", headers=zh)).status == 303
    await read(f"/console/receptions/{reception}/entry")
    assert not found, "English on Chinese pages:\n" + "\n".join(
        f"  {path}: {', '.join(words)}" for path, words in sorted(found.items())
    )


def _entry(path: str, config: object) -> str:
    """A directory entry's page with a key of its own kind."""
    if "/departments/" in path:
        return path.replace("/chen", "/" + config.departments[0].id)  # type: ignore[attr-defined]
    if "/categories/" in path:
        return path.replace("/chen", "/" + config.categories[0].code)  # type: ignore[attr-defined]
    return path


async def test_every_text_reads_in_chinese(client: Client, clock: Clock) -> None:
    """What the point texts (to submitters, to members) and answers by SMS, in zh-CN."""
    app = client.app
    config = app[appkeys.DIRECTORY].config
    desk, links = app[appkeys.TEXT_DESK], Links("https://hotline.example.org")
    phone = "+8613900000007"

    async def text(body: str) -> str:
        sms = InboundText(f"SM{time.monotonic_ns()}", phone, None, body, (), None)
        return await desk.answer(sms, clock(), links) or ""

    replies = [await text("厂区门口路灯坏了，晚上很危险")]
    await route_all(app)
    case = await app[appkeys.STORE].cases.latest_from(phone)
    assert case is not None
    replies += [await text(word) for word in ("STATUS", f"STATUS {case.code}", f"查询 {case.code}",
                                              "帮助", "查询 ABCDEFG")]  # fmt: skip
    await rich_case(app, clock)
    work, now = app[appkeys.CASEWORK], clock()
    await work.act(case.code, Request(Action.ACKNOWLEDGE, case.assignee_id or "shen"), now)
    await work.act(case.code, Request(Action.REPLY, "shen", text="已安排维修"), now)
    await work.act(case.code, Request(Action.RESOLVE, "shen", text="路灯已修好。"), now)
    replies += [await text("5")]
    clock.now += timedelta(days=30)
    await app[appkeys.TIMED].hand_off(clock())
    everything = replies + await _all_outbox(app)  # every text queued, to anyone
    assert len(everything) > 15
    allowed = ALLOWED | {m.id for m in config.members} | {"STOP", "START"}
    found = {body: words for body in everything if (words := english_in(body, allowed))}
    assert not found, "English in Chinese texts:\n" + "\n".join(
        f"  {body!r}: {', '.join(words)}" for body, words in found.items()
    )


async def _all_outbox(app: web.Application) -> list[str]:
    rows = await app[appkeys.STORE].db.fetch("SELECT body FROM outbox ORDER BY id")
    return [r["body"] for r in rows]
