"""The JSON API's first routes and its tokens: who may call (401 with WWW-Authenticate, 403
for a read token on a write route, 429 past the rate), a case made through intake with an
idempotent retry, every bad input refused naming the field with nothing stored, the report
figures as the console counts them, and the console's Tokens page."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import redis.asyncio as redis
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from hotline import appkeys
from hotline.app import create_app
from hotline.queue import keys
from hotline.service.demo.history import made_up
from hotline.service.settings import Settings
from tests.helpers import Client, Clock, field_named, route_all
from tests.service.test_reports import case as report_case
from tests.web.console_helpers import console_token, give_password, sign_in

KEY = "3f1c9a52-7d1e-4c7a-9a7e-0c6b1d2e3f40"


async def token(client: Client, scope: str, name: str | None = None) -> str:
    now = client.app[appkeys.CLOCK]()
    return await client.app[appkeys.TOKENS].create(name or f"test-{scope}", scope, "test", now)


def bearer(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


async def post_case(
    client: Client, secret: str, body: object, **headers: str
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        "/api/v1/cases",
        data=json.dumps(body, ensure_ascii=False),
        headers=bearer(secret, **{"Content-Type": "application/json"} | headers),
    )
    return resp.status, await resp.json()


async def test_no_token_an_unknown_or_revoked_one_is_401(client: Client) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        resp = await client.get("/api/v1/reports", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "authorization" in (await resp.json())["errors"]
    resp = await client.get("/api/v1/reports", headers=bearer("hl_" + "x" * 43))
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    secret = await token(client, "read")
    assert (await client.get("/api/v1/reports", headers=bearer(secret))).status == 200
    await client.app[appkeys.TOKENS].revoke("test-read", "test", client.app[appkeys.CLOCK]())
    resp = await client.get("/api/v1/reports", headers=bearer(secret))
    assert resp.status == 401
    for odd in ("Bearer \u00e9\u00e9", "Bearer " + "a" * 5000):
        assert (await client.get("/api/v1/reports", headers={"Authorization": odd})).status == 401


async def test_a_read_token_cannot_write(client: Client, redis_client: redis.Redis) -> None:
    secret = await token(client, "read")
    status, body = await post_case(client, secret, {"text": "园区路灯坏了"})
    assert status == 403 and "authorization" in body["errors"]
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_a_case_made_through_the_api_is_routed_and_a_retry_gets_its_code(
    client: Client, redis_client: redis.Redis
) -> None:
    secret = await token(client, "write", "town-office")
    body = {
        "text": "园区东门积水严重",
        "category": "safety",
        "company": "平湖某某精密机械有限公司",
        "phone": "+8613900001111",
        "source": "wechat",
        "urgent": True,
        "language": "zh-CN",
    }
    status, made = await post_case(client, secret, body, **{"Idempotency-Key": KEY})
    assert status == 201
    assert re.fullmatch(r"[2-9A-Z]{7}", made["code"])
    assert made["status_url"].endswith(f"/track/{made['code']}")
    again_status, again = await post_case(client, secret, body, **{"Idempotency-Key": KEY})
    assert (again_status, again["code"]) == (201, made["code"])
    # The same key with another request is refused: it would get the first one's code and
    # be lost. The same request written otherwise (keys in another order) is a retry.
    changed = body | {"text": "园区西门也积水"}
    refused, problem = await post_case(client, secret, changed, **{"Idempotency-Key": KEY})
    assert refused == 422 and "Idempotency-Key" in problem["errors"]
    reordered = dict(reversed(list(body.items())))
    again_status, again = await post_case(client, secret, reordered, **{"Idempotency-Key": KEY})
    assert (again_status, again["code"]) == (201, made["code"])
    # Two keys on one request: which would hold? Refused, naming the header.
    twice = CIMultiDict(bearer(secret, **{"Content-Type": "application/json"}))
    twice.add("Idempotency-Key", KEY)
    twice.add("Idempotency-Key", "another-key-0123456789")
    both = await client.post("/api/v1/cases", data=json.dumps(body), headers=twice)
    assert both.status == 400 and "Idempotency-Key" in (await both.json())["errors"]
    # Another partner's same key is another request.
    other = await token(client, "write", "city-12345")
    _, theirs = await post_case(client, other, body, **{"Idempotency-Key": KEY})
    assert theirs["code"] != made["code"]
    assert await route_all(client.app) == 2
    case = await client.app[appkeys.STORE].cases.by_code(made["code"])
    assert case is not None
    assert (case.channel, case.category, case.urgent) == ("api", "safety", True)
    assert case.submitter_phone == "+8613900001111" and case.source_tag == "wechat"


async def test_bad_requests_are_refused_naming_the_field(
    client: Client, redis_client: redis.Redis
) -> None:
    secret = await token(client, "write")
    cases: list[tuple[object, int, str]] = [
        ({}, 422, "text"),
        ({"text": ""}, 422, "text"),
        ({"text": "   "}, 422, "text"),
        ({"text": 5}, 422, "text"),
        ({"text": ["a"]}, 422, "text"),
        ({"text": "x" * 4001}, 422, "text"),
        ({"text": "有\x00控制字符"}, 422, "text"),
        ({"text": "ok", "company": "a\nb"}, 422, "company"),
        ({"text": "ok", "category": "nope"}, 422, "category"),
        ({"text": "ok", "phone": "12"}, 422, "phone"),
        ({"text": "ok", "urgent": "yes"}, 422, "urgent"),
        ({"text": "ok", "language": "fr"}, 422, "language"),
        ({"text": "ok", "source": "Bad Tag!"}, 422, "source"),
        ({"text": "ok", "colour": "red"}, 422, "colour"),
        (["text"], 422, "body"),
        ("text", 422, "body"),
        (None, 422, "body"),
    ]
    for body, status, field in cases:
        got, answer = await post_case(client, secret, body)
        assert (got, field in answer["errors"]) == (status, True), (body, answer)
    got, answer = await post_case(client, secret, {"text": "ok"}, **{"Idempotency-Key": "short"})
    assert got == 422 and "Idempotency-Key" in answer["errors"]
    raw = {"Content-Type": "application/json"}
    for data, status, field in (
        (b"{not json", 400, "body"),
        (b"\xff\xfe{}", 400, "body"),
        (b'{"text": "' + b"x" * 70_000 + b'"}', 413, "body"),
        (b'{"text": "a", "text": "ok"}', 400, "text"),  # which one was meant?
        (b'{"text": "ok", "x": {"a": 1, "a": 2}}', 400, "a"),
        (b"[" * 60_000, 400, "body"),  # too deep for Python's parser: not a 500
    ):
        resp = await client.post("/api/v1/cases", data=data, headers=bearer(secret, **raw))
        assert resp.status == status and field in (await resp.json())["errors"]
    # Says it is compressed and is not: aiohttp cannot decode it (a new connection each).
    for encoding in ("gzip", "deflate"):
        resp = await client.post(
            "/api/v1/cases",
            data=b'{"text": "ok"}',
            headers=bearer(secret, **raw, **{"Content-Encoding": encoding, "Connection": "close"}),
        )
        assert resp.status == 400 and "body" in (await resp.json())["errors"], encoding
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/json; charset=latin-1",  # it would be read as UTF-8 all the same
    ):
        resp = await client.post(
            "/api/v1/cases",
            data=b'{"text": "ok"}',
            headers=bearer(secret, **{"Content-Type": content_type}),
        )
        assert resp.status == 415, content_type
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0  # nothing half-stored


async def test_a_period_and_dates_together_are_refused(client: Client) -> None:
    secret = await token(client, "read")
    resp = await client.get(
        "/api/v1/reports?period=this-year&from=2026-01-01&to=2026-01-31", headers=bearer(secret)
    )
    assert resp.status == 400 and "period" in (await resp.json())["errors"]
    assert "\\u" not in await resp.text()  # UTF-8, as every answer


async def test_a_body_that_arrives_in_pieces_is_read_whole(client: Client) -> None:
    """aiohttp hands a read what has arrived so far: the API reads to the end."""
    secret = await token(client, "write")

    async def pieces() -> AsyncIterator[bytes]:
        body = json.dumps({"text": "园区东门积水严重，货车无法进出"}, ensure_ascii=False).encode()
        for start in range(0, len(body), 7):
            yield body[start : start + 7]
            await asyncio.sleep(0.01)

    resp = await client.post(
        "/api/v1/cases", data=pieces(),
        headers=bearer(secret, **{"Content-Type": "application/json"}),
    )  # fmt: skip
    assert resp.status == 201, await resp.text()


async def test_the_rate_limit_is_per_token(
    settings: Settings, clock: Clock, redis_client: redis.Redis
) -> None:
    app = create_app(dataclasses.replace(settings, api_rate=3), clock=clock)
    async with TestClient(TestServer(app)) as client:
        await _rate_limited(client)


async def _rate_limited(client: Client) -> None:
    busy, calm = await token(client, "read", "busy"), await token(client, "read", "calm")
    statuses = [
        (await client.get("/api/v1/reports", headers=bearer(busy))).status for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    resp = await client.get("/api/v1/reports", headers=bearer(busy))
    assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await client.get("/api/v1/reports", headers=bearer(calm))).status == 200
    used = {t.name: t.last_used_at for t in await client.app[appkeys.TOKENS].all()}
    assert used["busy"] is not None and used["calm"] is not None


async def test_report_figures_as_the_console_counts_them(client: Client) -> None:
    secret = await token(client, "write")
    codes = []
    for n in range(3):
        _, made = await post_case(
            client, secret, {"text": f"诉求 {n}"}, **{"Idempotency-Key": f"{KEY}{n}"[:64]}
        )
        codes.append(made["code"])
    await route_all(client.app)
    status, _ = await act_on(client, secret, codes[0], {"action": "acknowledge"})
    assert status == 200
    resp = await client.get("/api/v1/reports?from=2026-11-01&to=2026-11-30", headers=bearer(secret))
    figures = await resp.json()
    assert (figures["from"], figures["to"]) == ("2026-11-01", "2026-11-30")
    assert figures["counts"]["received"] == 3
    none = {"numerator": 0, "denominator": 0, "percent": None}
    answered = {"numerator": 1, "denominator": 1, "percent": 100.0}
    # Each group with its rates, as the console's per-member table has them.
    assert figures["by"]["channel"] == [
        {"key": "api", "received": 3, "response": answered, "resolution": none,
         "satisfaction": none}
    ]  # fmt: skip
    [member] = figures["by"]["member"]
    assert member["received"] == 3 and member["response"] == answered
    unrated = {"response": None, "resolution": None, "satisfaction": None}
    assert figures["by"]["company"] == [{"key": None, "received": 3} | unrated]  # received only
    assert figures["other_companies"] == 0
    assert figures["rates"]["response"] == answered
    assert sum(day["received"] for day in figures["series"]) == 3
    for query, field in (("from=2026-11-01", "to"), ("from=x&to=2026-11-02", "from"),
                         ("period=ever", "period"), ("reception=%2B1", "reception"),
                         ("reception=1.0", "reception")):  # fmt: skip
        resp = await client.get(f"/api/v1/reports?{query}", headers=bearer(secret))
        assert resp.status == 400 and field in (await resp.json())["errors"]
        if query.startswith("reception"):  # refused as a number, not as an unknown reception
            assert (await resp.json())["errors"][field] == "需要一个整数。"


async def test_report_companies_past_the_top_ones_are_summed(client: Client) -> None:
    """`by.company` names the 15 companies with most requests; the rest are summed, so the
    figures still add up to what was received."""
    at = client.app[appkeys.CLOCK]() - timedelta(days=1)
    rows = [report_case(at, company=f"第{n:02d}号企业有限公司") for n in range(17)]
    rows += [report_case(at, company="第00号企业有限公司")]  # the most: first
    # Those naming no company, the most of all: last, neither a company nor among the others.
    rows += [report_case(at) for _ in range(3)]
    await client.app[appkeys.STORE].cases.load_history(rows)
    secret = await token(client, "read")
    query = "/api/v1/reports?from=2026-11-01&to=2026-11-30"
    figures = await (await client.get(query, headers=bearer(secret))).json()
    by_company = figures["by"]["company"]
    by_company = [{"key": g["key"], "received": g["received"]} for g in by_company]
    assert len(by_company) == 16 and by_company[0] == {"key": "第00号企业有限公司", "received": 2}
    assert by_company[-1] == {"key": None, "received": 3}
    assert figures["other_companies"] == 2
    assert sum(g["received"] for g in by_company) + 2 == figures["counts"]["received"] == 21


async def test_report_referrals_count_each_department_a_case_went_to(client: Client) -> None:
    """A request referred to the budget office, then to the urban office, which answers:
    the report's per-department referrals name both (the case's columns keep only the
    latest)."""
    secret = await token(client, "write")
    _, made = await post_case(client, secret, {"text": "厂区道路破损"})
    await route_all(client.app)
    code = made["code"]
    for body in (
        {"action": "acknowledge"},
        {"action": "refer", "department": "budget", "due": "2026-12-01"},
        {"action": "refer", "department": "urban", "due": "2026-12-03"},
        {"action": "answer", "text": "已安排修复"},
    ):
        status, case = await act_on(client, secret, code, body)
        assert status == 200, case
    assert case["department"] == "urban"
    detail = await (await client.get(f"/api/v1/cases/{code}", headers=bearer(secret))).json()
    history = [(r["department"], r["state"]) for r in detail["referrals"]]
    assert history == [("budget", "taken-back"), ("urban", "on-time")]
    assert detail["referrals"][0]["ended_at"] == detail["referrals"][1]["referred_at"]
    query = "/api/v1/reports?from=2026-11-01&to=2026-11-30"
    figures = await (await client.get(query, headers=bearer(secret))).json()
    assert (figures["counts"]["referred"], figures["counts"]["referrals"]) == (1, 2)
    assert [(g["key"], g["received"]) for g in figures["by"]["department"]] == [("urban", 1)]
    on_time = {"numerator": 1, "denominator": 1, "percent": 100.0}
    assert figures["rates"]["referral_on_time"] == on_time
    assert sorted(figures["referrals"], key=lambda g: g["key"]) == [
        # Taken back before its due date: neither on time nor late.
        {"key": "budget", "referrals": 1, "past_due": 0,
         "on_time": {"numerator": 0, "denominator": 0, "percent": None}},
        {"key": "urban", "referrals": 1, "past_due": 0, "on_time": on_time},
    ]  # fmt: skip


async def test_unknown_api_routes_answer_json(client: Client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404 and "errors" in await resp.json()
    resp = await client.delete("/api/v1/cases")
    assert resp.status == 405 and "errors" in await resp.json()


async def test_heads_make_and_revoke_tokens_in_the_console(client: Client) -> None:
    await give_password(client.app, "shen")
    await give_password(client.app, "chen")
    await sign_in(client, "chen")
    assert (await client.get("/console/tokens")).status == 403
    await client.post("/console/logout", data={"csrf_token": await console_token(client)})
    await sign_in(client, "shen")
    csrf = await console_token(client, "/console/tokens")
    resp = await client.post("/console/tokens", data={"csrf_token": csrf, "name": "town-office",
                                                      "scope": "read"})  # fmt: skip
    page = await resp.text()
    secret = re.search(r'id="token-secret">([^<]+)<', page)
    assert resp.status == 200 and secret
    assert (await client.get("/api/v1/reports", headers=bearer(secret.group(1)))).status == 200
    listing = await (await client.get("/console/tokens")).text()
    assert "town-office" in listing and secret.group(1) not in listing  # shown once
    # In words: what it may do and whether it is in use (the revoke button in a column of
    # its own, not where the state is read), and the name's rule said before it is typed.
    row = listing[listing.index('<th scope="row">town-office') :].split("</tr>")[0]
    assert "<td>只读</td>" in row and "<td>使用中</td>" in row and ">停用</button>" in row
    assert 'id="token-name-help"' in listing and ">read<" not in listing
    again = await client.post("/console/tokens", data={"csrf_token": csrf, "name": "town-office",
                                                       "scope": "read"})  # fmt: skip
    assert again.status == 400 and field_named("name") in await again.text()
    bad = await client.post("/console/tokens", data={"csrf_token": csrf, "name": "x y",
                                                     "scope": "admin"})  # fmt: skip
    assert bad.status == 400
    await client.post("/console/tokens", data={"csrf_token": csrf, "revoke": "town-office"})
    assert (await client.get("/api/v1/reports", headers=bearer(secret.group(1)))).status == 401
    forged = await client.post("/console/tokens", data={"name": "sneaky", "scope": "write"})
    assert forged.status == 403


async def _made(client: Client, count: int, prefix: str, hours: int = 24 * 20) -> list[str]:
    config, now = client.app[appkeys.DIRECTORY].config, client.app[appkeys.CLOCK]()
    past = list(made_up(config, count, timedelta(hours=hours), now, seed=3, prefix=prefix))
    await client.app[appkeys.STORE].cases.load_history([p.row for p in past])
    return [p.row["code"] for p in past]


async def test_the_case_list_pages_without_skipping_or_repeating(client: Client) -> None:
    secret = await token(client, "read")
    made = await _made(client, 130, "page")
    seen: list[str] = []
    cursor = ""
    for extra in range(10):
        query = "limit=50" + (f"&cursor={cursor}" if cursor else "")
        resp = await client.get(f"/api/v1/cases?{query}", headers=bearer(secret))
        assert resp.status == 200
        page = await resp.json()
        seen += [item["code"] for item in page["items"]]
        assert all("submitter" not in key and "phone" not in key for key in page["items"][0])
        # Meanwhile new requests arrive: they belong before the first page, not in a later one.
        await _made(client, 1, f"late{extra}", hours=1)
        if page["next"] is None:
            break
        cursor = page["next"]
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)) == 130


async def test_the_case_list_filters_and_refuses_bad_ones(client: Client) -> None:
    secret = await token(client, "read")
    made = await _made(client, 40, "filters")
    everything = await (await client.get("/api/v1/cases?limit=500", headers=bearer(secret))).json()
    assert len(everything["items"]) == 40 and everything["next"] is None
    for name, value in (("channel", "sms"), ("status", "closed"), ("category", "finance"),
                        ("assignee", "chen")):  # fmt: skip
        resp = await client.get(f"/api/v1/cases?{name}={value}&limit=500", headers=bearer(secret))
        items = (await resp.json())["items"]
        field = {"assignee": "assignee"}.get(name, name)
        expected = [i["code"] for i in everything["items"] if i[field] == value]
        assert [i["code"] for i in items] == expected, name
    dated = await client.get("/api/v1/cases?since=2026-11-20&until=2026-11-24&limit=500",
                             headers=bearer(secret))  # fmt: skip
    codes = [i["code"] for i in (await dated.json())["items"]]
    assert codes and set(codes) < set(made)
    assert all(i["received_at"] >= "2026-11-19T16:00" for i in (await dated.json())["items"])
    # Either end alone, and any length of time: a list is not a report.
    for query, kept in (
        ("since=2026-11-20", lambda at: at >= "2026-11-19T16:00"),
        ("until=2026-11-19", lambda at: at < "2026-11-19T16:00"),
        ("since=2000-01-01&until=2099-12-31", lambda at: True),
    ):
        resp = await client.get(f"/api/v1/cases?{query}&limit=500", headers=bearer(secret))
        assert resp.status == 200, query
        expected = [i["code"] for i in everything["items"] if kept(i["received_at"])]
        assert [i["code"] for i in (await resp.json())["items"]] == expected, query
    # A page that ends the list offers no next page, even when it is full.
    resp = await client.get("/api/v1/cases?limit=40", headers=bearer(secret))
    page = await resp.json()
    assert len(page["items"]) == 40 and page["next"] is None
    resp = await client.get("/api/v1/cases?limit=39", headers=bearer(secret))
    assert (await resp.json())["next"] is not None
    bad = [
        ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
        ("limit=%EF%BC%95", "limit"), ("limit=%2B5", "limit"), ("limit=%205%20", "limit"),
        ("limit=5.0", "limit"), ("limit=1_0", "limit"), ("reception=0x1", "reception"),
        ("cursor=nonsense", "cursor"),
        ("cursor=" + base64.urlsafe_b64encode(b"2026-11-24~x").decode(), "cursor"),
        ("colour=red", "colour"), ("status=closed&status=open", "status"),
        ("since=2026-13-01&until=2026-12-01", "since"), ("since=2026-02-30", "since"),
        ("until=20261201", "until"), ("since=2026-12-01&until=2026-11-01", "until"),
    ]  # fmt: skip
    for query, field in bad:
        resp = await client.get(f"/api/v1/cases?{query}", headers=bearer(secret))
        assert resp.status == 400, query
        errors = (await resp.json())["errors"]
        assert field in errors, query
        if query.startswith(("limit=%2B", "limit=%20", "limit=5.", "limit=1_")):
            assert errors[field] == "需要一个整数。", query  # the point's language


async def test_one_case_with_its_timeline(client: Client) -> None:
    secret = await token(client, "write")
    _, made = await post_case(
        client, secret, {"text": "园区东门积水严重", "phone": "+8613900002222"}
    )
    await route_all(client.app)
    resp = await client.get(f"/api/v1/cases/{made['code'].lower()}", headers=bearer(secret))
    assert resp.status == 200
    case = await resp.json()
    assert case["code"] == made["code"] and case["channel"] == "api"
    assert [e["kind"] for e in case["events"]] == ["received", "assigned"]
    assert case["text"] == "园区东门积水严重" and case["messages"] == []
    assert "+8613900002222" not in json.dumps(case)
    for code in ("ZZZZZZZ", "not-a-code", "x" * 300):
        missing = await client.get(f"/api/v1/cases/{code}", headers=bearer(secret))
        assert missing.status == 404 and "code" in (await missing.json())["errors"]


async def act_on(
    client: Client, secret: str, code: str, body: object
) -> tuple[int, dict[str, Any]]:
    resp = await client.post(
        f"/api/v1/cases/{code}/actions",
        data=json.dumps(body, ensure_ascii=False),
        headers=bearer(secret, **{"Content-Type": "application/json"}),
    )
    return resp.status, await resp.json()


async def test_fields_an_action_does_not_take_are_not_kept(client: Client) -> None:
    """A department and a due date sent with an acknowledge or a note were never checked:
    the event log does not keep them (a refer's are checked, and kept)."""
    secret = await token(client, "write")
    _, made = await post_case(client, secret, {"text": "园区东门积水严重"})
    await route_all(client.app)
    code = made["code"]
    stray = {"department": "no-such-dept", "due": "1999-01-01"}
    for body in ({"action": "acknowledge", **stray}, {"action": "note", "text": "x", **stray}):
        status, _ = await act_on(client, secret, code, body)
        assert status == 200
    case = await (await client.get(f"/api/v1/cases/{code}", headers=bearer(secret))).json()
    kept = [e for e in case["events"] if e["kind"] in ("acknowledge", "note")]
    assert len(kept) == 2
    assert not any("department" in json.dumps(e) or "1999" in json.dumps(e) for e in kept)


async def test_the_console_s_actions_by_the_same_rules(client: Client) -> None:
    secret = await token(client, "write", "town-office")
    _, made = await post_case(client, secret, {"text": "园区东门积水严重"})
    await route_all(client.app)
    code = made["code"]
    status, case = await act_on(client, secret, code, {"action": "resolve", "text": "done"})
    assert status == 409 and "action" in case["errors"]  # not from "assigned"
    status, case = await act_on(client, secret, code, {"action": "acknowledge"})
    assert (status, case["status"]) == (200, "acknowledged")
    stale = {"action": "note", "text": "x", "seen_status": "assigned"}
    status, case = await act_on(client, secret, code, stale)
    assert status == 409 and "seen_status" in case["errors"]
    stale = {"action": "reassign", "member": "wang", "seen_assignee": "nobody-seen"}
    status, case = await act_on(client, secret, code, stale)
    assert status == 409 and "seen_assignee" in case["errors"]
    for body, field in (
        ({"action": "refer", "department": "budget"}, "due"),
        ({"action": "refer", "department": "nope", "due": "2026-12-01"}, "department"),
        ({"action": "refer", "department": "budget", "due": "2026-13-01"}, "due"),
        ({"action": "refer", "department": "budget", "due": "2020-01-01"}, "due"),  # passed
        ({"action": "refer", "department": "budget", "due": "20261231"}, "due"),
        ({"action": "refer", "department": "budget", "due": "2026-W50-3"}, "due"),
        ({"action": "note"}, "text"),  # the console calls it the note; here it is `text`
        ({"action": "reply", "text": ""}, "text"),
        ({"action": "note", "text": "长" * 2001}, "text"),
        ({"action": "fly"}, "action"),
        ({"action": "rate"}, "action"),
        ({"action": "note", "text": 5}, "text"),
        ({"action": "note", "text": "a\x01b"}, "text"),
        ({"action": "note", "text": "\u202eabc"}, "text"),
        ({"action": "note", "text": "x", "colour": "red"}, "colour"),
        (["note"], "body"),
    ):
        status, answer = await act_on(client, secret, code, body)
        assert status == 422 and field in answer["errors"], body
    far = {"action": "refer", "department": "budget", "due": "9999-12-31"}
    status, answer = await act_on(client, secret, code, far)
    assert status == 422 and "9000" in answer["errors"]["due"]  # a date, past the years taken
    body = {"action": "refer", "department": "budget", "due": "2026-12-01"}
    status, case = await act_on(client, secret, code, body)
    assert (status, case["status"], case["department"]) == (200, "referred", "budget")
    events = (await (await client.get(f"/api/v1/cases/{code}", headers=bearer(secret))).json())[
        "events"
    ]
    assert [e["actor"] for e in events if e["kind"] in ("acknowledge", "refer")] == [
        "api:town-office",
        "api:town-office",
    ]
    assert (await act_on(client, secret, "ZZZZZZZ", {"action": "acknowledge"}))[0] == 404
    reader = await token(client, "read")
    assert (await act_on(client, reader, code, {"action": "note", "text": "x"}))[0] == 403


async def test_a_reply_is_stored_whole_or_not_at_all(client: Client) -> None:
    """A reply's event, its message on /track and its text to the submitter are one write;
    text with a control character in it (a NUL, which PostgreSQL cannot store) is refused
    before anything is written."""
    secret = await token(client, "write")
    _, made = await post_case(client, secret, {"text": "园区东门积水严重", "phone": "13900000001"})
    await route_all(client.app)
    code = made["code"]
    store = client.app[appkeys.STORE]
    case = await store.cases.by_code(code)
    assert case is not None

    async def kept() -> tuple[int, int, int]:
        events = await store.fetch("SELECT count(*) AS n FROM events WHERE case_id = :id",
                                   {"id": case.id})  # fmt: skip
        messages = await store.cases.messages(case.id)
        texts = await client.app[appkeys.OUTBOX].for_case(case.id)
        return int(events[0]["n"]), len(messages), len(texts)

    before = await kept()
    for text in ("已联系物业\x00抽水", "已联系\x01物业", "\u202e已联系物业"):
        status, answer = await act_on(client, secret, code, {"action": "reply", "text": text})
        assert status == 422 and "text" in answer["errors"], (text, answer)
    assert await kept() == before
    # A reply made one shape (NFC, line breaks as \n) is stored so, and texted so.
    status, _ = await act_on(client, secret, code, {"action": "reply", "text": " 已联系\r\n物业 "})
    assert status == 200
    assert await kept() == (before[0] + 1, before[1] + 1, before[2] + 1)
    message = (await store.cases.messages(case.id))[-1]
    assert (message.direction, message.channel, message.body) == ("out", "sms", "已联系\n物业")
    sms = (await client.app[appkeys.OUTBOX].for_case(case.id))[-1]
    assert sms.body == f"[{code}] 已联系\n物业" and sms.status == "queued"
    # What a document pastes for a line break (U+2028, VT, FF, NEL) is one; a BOM goes.
    pasted = "\ufeff明早\u2028派人\x0b到场\x85处理"
    status, _ = await act_on(client, secret, code, {"action": "reply", "text": pasted})
    assert status == 200
    message = (await store.cases.messages(case.id))[-1]
    assert message.body == "明早\n派人\n到场\n处理"


async def test_duty_shifts(client: Client) -> None:
    secret = await token(client, "read")
    resp = await client.get("/api/v1/duty?from=2026-11-23&to=2026-11-25", headers=bearer(secret))
    assert resp.status == 200
    shifts = (await resp.json())["shifts"]
    # From midnight: the night's head (wang, since 08:30 the day before), then the rotation
    # from its start at 08:30 on 2026-11-23 (00:30 UTC).
    assert [s["member"] for s in shifts] == ["wang", "chen", "zhu", "wang"]
    assert shifts[1]["start"] == "2026-11-23T00:30:00.000000Z" == shifts[0]["end"]
    bad = (
        ("from=2026-11-25&to=2026-11-23", "to"),
        ("from=2026-01-01&to=2026-12-31", "to"),
        ("from=x&to=y", "from"),
    )
    for query, field in bad:
        resp = await client.get(f"/api/v1/duty?{query}", headers=bearer(secret))
        assert resp.status == 400 and field in (await resp.json())["errors"], query


async def test_errors_are_in_the_language_the_caller_asks_for(client: Client) -> None:
    """Accept-Language (zh or en) chooses the errors' language; without it, the point's."""
    secret = await token(client, "read")
    said = {}
    for lang in ("en", "zh-CN", None):
        headers = bearer(secret, **({"Accept-Language": lang} if lang else {}))
        resp = await client.get("/api/v1/cases?limit=9999", headers=headers)
        assert resp.status == 400
        said[lang] = (await resp.json())["errors"]["limit"]
    assert said["en"].isascii() and not said["zh-CN"].isascii()
    assert said[None] == said["zh-CN"]  # the demo point speaks Chinese
