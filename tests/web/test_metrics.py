"""GET /metrics: Prometheus's text format (parsed back with prometheus_client's own parser),
the figures match what happened, and HOTLINE_METRICS_TOKEN guards it."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from hotline.app import create_app
from hotline.queue import keys
from hotline.service.settings import Settings
from tests.helpers import Client, form_fields, route_all

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
JSON = {"Accept": "application/json"}


async def submit(client: Client, fields: dict[str, str], text: str) -> str:
    resp = await client.post("/submit", data=fields | {"text": text}, headers=JSON)
    assert resp.status == 201, await resp.text()
    code: str = (await resp.json())["code"]
    return code


async def scrape(client: Client, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_metrics_count_intake_routing_and_backlog(
    client: Client, app: web.Application
) -> None:
    before = await scrape(client)
    assert before[("hotline_stream_length", (("stream", keys.INTAKE_STREAM),))] == 0
    assert before[("hotline_backend_up", (("backend", "database"),))] == 1
    assert before[("hotline_backend_up", (("backend", "redis"),))] == 1

    fields = await form_fields(client)
    first = await submit(client, fields, "厂区路灯坏了")
    assert await submit(client, fields, "厂区路灯坏了") == first  # a retry: the same code
    refused = await client.post("/submit", data=fields | {"text": ""}, headers=JSON)
    assert refused.status == 400
    nul = await client.post("/submit?src=%00", data=fields | {"text": "hi"}, headers=JSON)
    assert nul.status == 400  # refused before the handler (error_pages), counted all the same

    queued = await scrape(client)
    web_ = (("channel", "web"),)
    assert queued[("hotline_intake_total", (*web_, ("outcome", "queued")))] == 1
    assert queued[("hotline_intake_total", (*web_, ("outcome", "duplicate")))] == 1
    assert queued[("hotline_intake_total", (*web_, ("outcome", "refused")))] == 2
    assert queued[("hotline_stream_length", (("stream", keys.INTAKE_STREAM),))] == 1

    await route_all(app)
    routed = await scrape(client)
    assert routed[("hotline_stream_length", (("stream", keys.INTAKE_STREAM),))] == 0
    assert routed[("hotline_open_cases", (("status", "assigned"),))] == 1
    assert routed[("hotline_outbox", (("status", "queued"),))] >= 1  # the member's text
    assert routed[("hotline_overdue_referrals", ())] == 0
    assert routed[("hotline_dead_letters", (("stream", keys.INTAKE_DEAD),))] == 0
    assert routed[("hotline_live_clients", ())] == 0
    assert routed[("hotline_spool_files", ())] == 0
    assert routed[("hotline_code_filter_ready", ())] == 1
    # Five bits per code issued (the demo's and ours), of 2^25.
    assert 0 < routed[("hotline_code_filter_fill", ())] * (1 << 25) <= 5 * 10


async def test_the_router_reports_its_batches_and_latency(
    app: web.Application, client: Client
) -> None:
    await submit(client, await form_fields(client), "路灯坏了")
    await route_all(app)  # the router tests use: a consumer wired as the app wires it
    samples = await scrape(client)
    assert samples[("hotline_router_batch_size_count", ())] >= 1
    assert samples[("hotline_router_store_seconds_count", ())] == 1
    assert samples[("hotline_receipt_to_stored_seconds_count", ())] == 1


async def test_a_metrics_token_is_asked_for_when_set(settings: Settings) -> None:
    guarded = create_app(dataclasses.replace(settings, metrics_token="s3cret-scrape"))
    async with TestClient(TestServer(guarded)) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "s3cret"},
            {"Authorization": "Bearer 令牌"},  # not ASCII: refused like any other, not a 500
        ):
            resp = await client.get("/metrics", headers=headers)
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await scrape(client, Authorization="Bearer s3cret-scrape")
