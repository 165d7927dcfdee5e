"""Outgoing webhooks, end to end against a partner's receiver (a local aiohttp app, the one
kind of fake allowed: a partner we cannot reach from here): every event a submitter could
see arrives once, signed as README says; a partner that is down gets it again with backoff
and in the end is given up on; a hanging partner holds no intake; revoking stops them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient, TestServer

from hotline import appkeys
from hotline.app import create_app
from hotline.channels.webhooks import HttpPoster, sign, verify
from hotline.queue.sender import Sender
from hotline.service import webhooks as webhooks_module
from hotline.service.casework import Request
from hotline.service.delivery import Delivery
from hotline.service.labels import webhook_error
from hotline.service.links import Links
from hotline.service.ports import WebhookEvent, WebhookUnreachable
from hotline.service.sealing import Sealer, Unsealable, sealed
from hotline.service.store.webhooks import Outcome
from hotline.service.webhooks import (
    BACKOFF,
    NOT_TRIED,
    PER_WEBHOOK,
    BadWebhook,
    WebhookDelivery,
)
from hotline.service.workflow import Action
from tests.helpers import Client, Clock, field_named, route_all
from tests.web.console_helpers import console_token, give_password, sign_in

SECRET = "whsec_test-secret-of-partner"


@dataclass
class Partner:
    """A partner's webhook receiver: records what arrives; answers `status`, or hangs."""

    status: int = 200
    hang: asyncio.Event | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append({"headers": dict(request.headers), "body": body,
                              "json": json.loads(body)})  # fmt: skip
        self.arrived.set()
        if self.hang is not None:
            await self.hang.wait()
        return web.Response(status=self.status)

    def ids(self) -> list[str]:
        return [r["json"]["id"] for r in self.received]


@pytest.fixture
async def partner() -> AsyncIterator[tuple[Partner, str]]:
    receiver = Partner()
    app = web.Application()
    app.router.add_post("/hooks/hotline", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield receiver, str(server.make_url("/hooks/hotline"))
    if receiver.hang is not None:
        receiver.hang.set()
    await server.close()


async def send_all(app: web.Application) -> None:
    """The sender in burst mode: the outbound stream (texts, webhook wake-ups), then its sweep."""
    delivery = Delivery(app[appkeys.OUTBOX], app[appkeys.SMS_PROVIDER], app[appkeys.CLOCK])
    sender = Sender(
        app[appkeys.REDIS], delivery, webhooks=app[appkeys.WEBHOOK_DELIVERY], consumer="t"
    )
    await sender.run_burst()


def impatient(app: web.Application, timeout: float = 1.0) -> tuple[HttpPoster, WebhookDelivery]:
    """The sender's webhook side with a one-second timeout (a hanging partner, quickly)."""
    poster = HttpPoster(lambda: "p", timeout=timeout)
    directory = app[appkeys.DIRECTORY]
    delivery = WebhookDelivery(
        app[appkeys.STORE], poster, app[appkeys.CLOCK], lambda: directory.config, Links(""),
        Sealer(app[appkeys.SETTINGS].secret_key),
    )  # fmt: skip
    return poster, delivery


async def new_case(client: Client, text: str = "园区东门积水严重") -> str:
    app = client.app
    now = app[appkeys.CLOCK]()
    secret = await app[appkeys.TOKENS].create(f"p{time.monotonic_ns()}", "write", "t", now)
    resp = await client.post(
        "/api/v1/cases", json={"text": text}, headers={"Authorization": f"Bearer {secret}"}
    )
    assert resp.status == 201
    code: str = (await resp.json())["code"]
    await route_all(app)
    return code


async def test_every_public_event_arrives_once_signed(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    await app[appkeys.WEBHOOKS].register("town-office", url, SECRET, "shen", clock())
    code = await new_case(client)
    await send_all(app)
    assert [r["json"]["type"] for r in receiver.received] == ["case.received", "case.assigned"]
    work = app[appkeys.CASEWORK]
    await work.act(code, Request(Action.NOTE, "shen", text="内部：先联系物业"), clock())
    await work.act(code, Request(Action.REPLY, "shen", text="已联系物业抽水"), clock())
    await send_all(app)
    await send_all(app)  # nothing is sent twice
    assert [r["json"]["type"] for r in receiver.received] == [
        "case.received",
        "case.assigned",
        "case.reply",
    ]  # the internal note is not a partner's business
    assert len(set(receiver.ids())) == 3
    reply = receiver.received[-1]
    assert (
        reply["json"]["data"]["code"] == code and reply["json"]["data"]["text"] == "已联系物业抽水"
    )
    case = await app[appkeys.STORE].cases.by_code(code)
    assert case is not None and reply["json"]["data"]["status"] == case.status
    assert reply["json"]["point"] == app[appkeys.DIRECTORY].config.point.id
    assert reply["headers"]["Hotline-Event"] == "case.reply"
    assert reply["headers"]["Hotline-Event-Id"] == reply["json"]["id"]
    assert reply["headers"]["Content-Type"] == "application/json"
    # The partner's check, as README describes it.
    header, body = reply["headers"]["Hotline-Signature"], reply["body"]
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert stamp == int(clock().timestamp())
    assert verify(SECRET, header, body, now=stamp + 10)
    assert not verify(SECRET, header, body.replace(b"\xe5", b"\xe6"), now=stamp)
    assert not verify("another-secret-entirely", header, body, now=stamp)
    assert not verify(SECRET, header, body, now=stamp + 301)  # replayed later
    assert header == sign(SECRET, stamp, body)
    deliveries = await app[appkeys.WEBHOOKS].recent()
    assert {d.status for d in deliveries} == {"delivered"} and len(deliveries) == 3


def readme_verified() -> Callable[[str, str, bytes], bool]:
    """The partner's recipe as README gives it, run as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text("utf-8")
    [code] = re.findall(r"```python\n(import hashlib, hmac, re, time\n.*?)```", readme, re.S)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own README's example
    verified: Callable[[str, str, bytes], bool] = namespace["verified"]
    return verified


@pytest.mark.parametrize(
    "header",
    [
        "",
        "t=",
        "v1=abc",
        "t=²,v1=abc",
        "t=١٢٣,v1=abc",
        "t=1,t=2,v1=abc",
        "t={now},v1=签名",
        "t={now}",
        "t=" + "9" * 400 + ",v1=abc",  # int() takes it; the subtraction overflows a float
        "t=" + "9" * 5000 + ",v1=abc",  # past int()'s 4,300 digits
    ],
)
def test_a_partner_refuses_a_malformed_signature_without_an_error(header: str) -> None:
    """Our `verify` and README's recipe alike: False, never an exception (a superscript
    digit passes isdigit and breaks int; a str that is not ASCII breaks compare_digest)."""
    now = int(time.time())
    header = header.format(now=now)
    body = b'{"id": "x"}'
    assert not verify(SECRET, header, body, now=now)
    assert not readme_verified()(SECRET, header, body)
    good = sign(SECRET, now, body)
    assert verify(SECRET, good, body, now=now) and readme_verified()(SECRET, good, body)


async def test_a_department_s_answer_carries_its_department_and_a_public_text(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    await app[appkeys.WEBHOOKS].register("town-office", url, SECRET, "shen", clock())
    work = app[appkeys.CASEWORK]
    answers = []
    for public in (True, False):
        code = await new_case(client)
        await work.act(code, Request(Action.ACKNOWLEDGE, "shen"), clock())
        due = clock() + timedelta(days=3)
        await work.act(code, Request(Action.REFER, "shen", department="budget", due=due), clock())
        answer = Request(Action.ANSWER, "shen", text="可申请贴息", public=public)
        await work.act(code, answer, clock())
        await send_all(app)
        sent = [r["json"] for r in receiver.received if r["json"]["type"] == "case.answer"]
        answers.append(next(e["data"] for e in sent if e["data"]["code"] == code))
    shown, kept = answers
    assert (shown["department"], shown["text"]) == ("预算工委", "可申请贴息")
    assert kept["department"] == "预算工委" and "text" not in kept  # not marked public


async def test_a_signing_secret_is_kept_sealed(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """The database holds the secret encrypted (a dump or a replica does not give it away);
    one stored in clear before is sealed at start and signs as before; one sealed with
    another HOTLINE_SECRET_KEY is not sent, and is tried again, naming the cause."""
    receiver, url = partner
    app = client.app
    store = app[appkeys.STORE]
    await app[appkeys.WEBHOOKS].register("city-12345", url, SECRET, "shen", clock())
    [hook] = await store.webhooks.all()
    assert sealed(hook.secret) and SECRET not in hook.secret
    # One stored in clear (registered before secrets were sealed): sealed once, at start.
    assert await store.webhooks.reseal(hook.id, hook.secret, SECRET) == 1
    assert await app[appkeys.WEBHOOKS].seal_older() == 1
    assert await app[appkeys.WEBHOOKS].seal_older() == 0
    [hook] = await store.webhooks.all()
    assert sealed(hook.secret) and SECRET not in hook.secret
    code = await new_case(client)
    await route_all(app)
    await send_all(app)
    delivered = len(receiver.received)
    assert delivered and all(
        verify(SECRET, r["headers"]["Hotline-Signature"], r["body"], now=int(clock().timestamp()))
        and r["json"]["data"]["code"] == code
        for r in receiver.received
    )
    # Sealed with another key than this process's: tried again later (a process with the
    # right key may send it), the cause named; nothing is sent with a wrong secret.
    other = Sealer("another-secret-key-entirely").seal(SECRET)
    assert await store.webhooks.reseal(hook.id, hook.secret, other) == 1
    await app[appkeys.CASEWORK].act(code, Request(Action.REPLY, "shen", text="已处理"), clock())
    await send_all(app)
    assert len(receiver.received) == delivered
    waiting = [d for d in await app[appkeys.WEBHOOKS].recent() if d.status == "retrying"]
    assert waiting and all("HOTLINE_SECRET_KEY" in (d.last_error or "") for d in waiting)


async def test_a_partner_that_is_down_gets_it_later_then_is_given_up(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    await app[appkeys.WEBHOOKS].register("city-12345", url, SECRET, "shen", clock())
    receiver.status = 503
    await new_case(client)
    await send_all(app)
    assert len(receiver.received) == 2
    rows = await app[appkeys.WEBHOOKS].recent()
    assert {(d.status, d.attempts, d.last_status) for d in rows} == {("retrying", 1, 503)}
    await send_all(app)  # not yet: the first retry waits BACKOFF[0]
    assert len(receiver.received) == 2
    receiver.status = 200
    clock.now += BACKOFF[0] + timedelta(seconds=1)
    await send_all(app)
    assert len(receiver.received) == 4
    assert {d.status for d in await app[appkeys.WEBHOOKS].recent()} == {"delivered"}

    receiver.status = 500  # down for good: tried over about a day, then given up
    code = await new_case(client, "路灯坏了")
    await app[appkeys.CASEWORK].act(code, Request(Action.ACKNOWLEDGE, "zhu"), clock())
    for wait in (timedelta(0), *BACKOFF):
        clock.now += wait + timedelta(seconds=1)
        await send_all(app)
    rows = [d for d in await app[appkeys.WEBHOOKS].recent() if d.code == code]
    assert {(d.status, d.attempts) for d in rows} == {("failed", len(BACKOFF) + 1)}
    clock.now += timedelta(days=2)
    before = len(receiver.received)
    await send_all(app)
    assert len(receiver.received) == before  # given up is final


async def test_a_hanging_partner_holds_no_intake_and_times_out(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    receiver.hang = asyncio.Event()
    await app[appkeys.WEBHOOKS].register("slow", url, SECRET, "shen", clock())
    first = await new_case(client)
    poster, delivery = impatient(app)
    sending = asyncio.create_task(delivery.run_due())
    await receiver.arrived.wait()
    # The sender waits on the partner; requests still come in and are routed meanwhile.
    second = await new_case(client, "食堂需要更多座位")
    assert not sending.done()
    assert await app[appkeys.STORE].cases.by_code(second) is not None
    # Both events of each case, each timed out (the second case's were queued meanwhile).
    assert await sending == 4
    await poster.close()
    rows = await app[appkeys.WEBHOOKS].recent()
    assert {d.code for d in rows} == {first, second} and {d.status for d in rows} == {"retrying"}
    assert all(d.last_error and "Timeout" in d.last_error for d in rows)
    assert {webhook_error(d.last_error or "") for d in rows} == {"no answer in time"}


async def test_why_a_delivery_failed_is_said_in_words(clock: Clock) -> None:
    """The console shows a delivery's stored error in the reader's words: a partner whose
    port is closed could not be connected to; one revoked, or left untried, says so."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    poster = HttpPoster(lambda: "p", timeout=5)
    event = WebhookEvent(1, "case.received", clock(), {"code": "ABCDEFG"})
    with pytest.raises(WebhookUnreachable) as refused:
        await poster.post(f"http://127.0.0.1:{port}/hook", SECRET, event, clock())
    await poster.close()
    assert webhook_error(str(refused.value)) == "could not connect"
    assert webhook_error(NOT_TRIED).startswith("not tried")
    assert webhook_error("revoked") == "the webhook was revoked"
    assert webhook_error("HTTP 999 something new") == "no usable answer"


class Resolving(AbstractResolver):
    """A name service that answers what it is told (no /etc/hosts to edit here)."""

    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0,
             "flags": socket.AI_NUMERICHOST}
            for a in self.addresses
        ]  # fmt: skip

    async def close(self) -> None:
        pass


async def test_a_name_that_leads_to_the_clouds_metadata_is_never_posted_to(
    partner: tuple[Partner, str], clock: Clock
) -> None:
    """A host name is looked at when it is sent to: one that leads only to an address no
    partner can be at (169.254.169.254, as metadata.google.internal does) is refused and
    said so; of several addresses, those a partner can be at are used."""
    receiver, url = partner
    port = int(url.split(":")[2].split("/")[0])
    event = WebhookEvent(1, "case.received", clock(), {"code": "ABCDEFG"})
    metadata = HttpPoster(lambda: "p", timeout=5, resolver=Resolving(["169.254.169.254"]))
    with pytest.raises(WebhookUnreachable) as refused:
        await metadata.post(f"http://metadata.test:{port}/hooks/hotline", SECRET, event, clock())
    await metadata.close()
    assert str(refused.value).startswith("NowhereAddress: metadata.test leads only to")
    assert webhook_error(str(refused.value)) == (
        "its host name leads to an address no partner can be at"
    )
    # An address typed is looked at too (a webhook registered before it was refused).
    typed = HttpPoster(lambda: "p", timeout=5)
    with pytest.raises(WebhookUnreachable) as refused:
        await typed.post("http://[::ffff:169.254.169.254]/latest/", SECRET, event, clock())
    await typed.close()
    assert str(refused.value).startswith("NowhereAddress: ")
    mixed = HttpPoster(lambda: "p", timeout=5, resolver=Resolving(["169.254.169.254", "127.0.0.1"]))
    assert (
        await mixed.post(f"http://bridge.test:{port}/hooks/hotline", SECRET, event, clock()) == 200
    )
    await mixed.close()
    assert len(receiver.received) == 1


async def test_a_partner_that_is_down_costs_one_timeout_and_others_get_theirs(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """Two partners, one hanging: in a round the hanging one gets at most PER_WEBHOOK posts
    (each timing out); once one has failed the rest of its round wait for their retry
    untried; the other partner gets every event in the same round."""
    hanging, url = partner
    hanging.hang = asyncio.Event()
    healthy = Partner()
    other = web.Application()
    other.router.add_post("/hooks", healthy.handle)
    server = TestServer(other, host="127.0.0.1")
    await server.start_server()
    app = client.app
    await app[appkeys.WEBHOOKS].register("down", url, SECRET, "shen", clock())
    await app[appkeys.WEBHOOKS].register("up", str(server.make_url("/hooks")), SECRET, "shen",
                                         clock())  # fmt: skip
    for n in range(3):
        await new_case(client, f"路灯坏了 {n}")
    poster, delivery = impatient(app)
    started = time.monotonic()
    assert await delivery.run_due() == 12  # two events of three cases, for each partner
    took = time.monotonic() - started
    await poster.close()
    await server.close()
    assert len(healthy.received) == 6
    assert len(hanging.received) == PER_WEBHOOK
    assert took < 2 * 1.0 + 0.8  # one timeout of a second (two would be 2 s; six, 6 s)
    rows = [d for d in await app[appkeys.WEBHOOKS].recent() if d.webhook == "down"]
    assert {d.status for d in rows} == {"retrying"}
    errors = sorted(d.last_error or "" for d in rows)
    assert sum("Timeout" in e for e in errors) == PER_WEBHOOK
    assert errors.count(NOT_TRIED) == 6 - PER_WEBHOOK
    # Those left untried keep their tries: a partner down for long gives up on what it was
    # sent, not on what waited behind it.
    assert {d.attempts for d in rows if d.last_error == NOT_TRIED} == {0}


async def test_a_delivery_left_untried_keeps_why_it_was_being_retried(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """Tried and answered 503, then left untried in a round its partner failed: the console
    still says 503 (why it is retried), not "not tried"; one never tried says not tried."""
    app = client.app
    await app[appkeys.WEBHOOKS].register("flaky", partner[1], SECRET, "shen", clock())
    await new_case(client)
    repo = app[appkeys.STORE].webhooks
    first, second = await repo.claim(clock(), 10)
    later = clock() + timedelta(seconds=30)
    await repo.settle([Outcome(first.id, "retrying", 503, "HTTP 503", later),
                       Outcome(second.id, "retrying", None, NOT_TRIED, later, tried=False)],
                      clock())  # fmt: skip
    clock.now = later + timedelta(seconds=1)
    again = await repo.claim(clock(), 10)
    assert {d.id for d in again} == {first.id, second.id}
    await repo.settle([Outcome(d.id, "retrying", None, NOT_TRIED, clock() + timedelta(seconds=30),
                               tried=False) for d in again], clock())  # fmt: skip
    rows = {d.event_id: d for d in await app[appkeys.WEBHOOKS].recent()}
    kept, untried = rows[first.event_id], rows[second.event_id]
    assert (kept.last_status, kept.last_error, kept.attempts) == (503, "HTTP 503", 1)
    assert (untried.last_status, untried.last_error, untried.attempts) == (None, NOT_TRIED, 0)


async def test_a_long_round_is_not_taken_for_stuck(
    client: Client, partner: tuple[Partner, str], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that outlasts STUCK_AFTER (a slow partner, many deliveries) keeps stamping
    what it has in hand, so a sweep meanwhile does not send them back to be posted twice."""
    receiver, url = partner
    receiver.hang = asyncio.Event()
    app = client.app
    monkeypatch.setattr(webhooks_module, "IN_HAND_EVERY", 0.05)
    await app[appkeys.WEBHOOKS].register("slow", url, SECRET, "shen", clock())
    await new_case(client)
    poster, delivery = impatient(app, timeout=30.0)
    sending = asyncio.create_task(delivery.run_due())
    try:
        await asyncio.wait_for(receiver.arrived.wait(), 5)
        clock.now += webhooks_module.STUCK_AFTER + timedelta(minutes=1)
        await asyncio.sleep(0.3)  # a stamp or more at the new time
        await delivery.unstick()
        assert {d.status for d in await app[appkeys.WEBHOOKS].recent()} == {"sending"}
    finally:
        receiver.hang.set()
        await sending
        await poster.close()
    assert {d.status for d in await app[appkeys.WEBHOOKS].recent()} == {"delivered"}
    assert len(receiver.received) == 2  # each once


async def sender_running(
    app: web.Application, receiver: Partner, url: str, clock: Clock
) -> tuple[HttpPoster, asyncio.Event, asyncio.Task[None]]:
    """A partner that hangs, registered; the sender running as `serve` runs it (its
    poster, its stop event, its task)."""
    receiver.hang = asyncio.Event()
    await app[appkeys.WEBHOOKS].register("slow", url, SECRET, "shen", clock())
    poster, hooks = impatient(app, timeout=30.0)
    delivery = Delivery(app[appkeys.OUTBOX], app[appkeys.SMS_PROVIDER], app[appkeys.CLOCK])
    sender = Sender(app[appkeys.REDIS], delivery, webhooks=hooks, consumer="t", block_ms=50)
    stop = asyncio.Event()
    return poster, stop, asyncio.create_task(sender.run(stop))


async def test_a_stopped_sender_leaves_no_webhook_round_running(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """Stopped while a partner hangs, and cancelled as the app does after its grace: the
    round is cancelled with it, not left posting after the store has closed."""
    receiver, url = partner
    app = client.app
    poster, stop, running = await sender_running(app, receiver, url, clock)
    await new_case(client)
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    stop.set()
    await asyncio.sleep(0.2)
    running.cancel()  # the app's grace is over
    with contextlib.suppress(asyncio.CancelledError):
        await running
    left = [t for t in asyncio.all_tasks() if t.get_name() == "webhooks" and not t.done()]
    assert left == []
    await poster.close()


async def test_texts_are_sent_while_a_partner_hangs(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """The sender running as `serve` runs it: a partner's hanging POST is waited on beside
    the texts, not before them."""
    receiver, url = partner
    app = client.app
    poster, stop, running = await sender_running(app, receiver, url, clock)
    hang = receiver.hang
    assert hang is not None
    try:
        await new_case(client)
        await asyncio.wait_for(receiver.arrived.wait(), 5)  # the partner now hangs
        code = await new_case(client, "食堂需要更多座位")  # texts its member
        case = await app[appkeys.STORE].cases.by_code(code)
        assert case is not None
        deadline = time.monotonic() + 5
        while True:
            texts = await app[appkeys.OUTBOX].for_case(case.id)
            if texts and all(t.status != "queued" for t in texts):
                break
            assert time.monotonic() < deadline, [t.status for t in texts]
            await asyncio.sleep(0.05)
        assert not hang.is_set()  # sent while the partner still hung
    finally:
        hang.set()
        stop.set()
        await asyncio.wait_for(running, 15)
        await poster.close()
    assert {d.status for d in await app[appkeys.WEBHOOKS].recent()} <= {"delivered", "queued"}


async def test_revoking_drops_what_waits_and_offers_nothing_new(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    hooks = app[appkeys.WEBHOOKS]
    await hooks.register("old-partner", url, SECRET, "shen", clock())
    await new_case(client)
    assert await hooks.revoke("old-partner", "shen", clock())
    await new_case(client, "路灯坏了")
    await send_all(app)
    assert receiver.received == []
    rows = await hooks.recent()
    assert len(rows) == 2 and {(d.status, d.last_error) for d in rows} == {("failed", "revoked")}
    assert not await hooks.revoke("old-partner", "shen", clock())
    await hooks.register("old-partner", url, "", "shen", clock())  # the name is free again


async def test_an_offer_that_lands_after_its_webhook_was_revoked_is_dropped(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """The router's batch runs at READ COMMITTED on PostgreSQL: its offer to a webhook can
    commit just after the webhook's revoke cleared what waited. It is dropped when the
    sender next claims, never left waiting."""
    receiver, url = partner
    app = client.app
    hooks = app[appkeys.WEBHOOKS]
    await hooks.register("leaving", url, SECRET, "shen", clock())
    await new_case(client)
    store = app[appkeys.STORE]
    [row] = await store.fetch("SELECT id FROM webhooks WHERE name = 'leaving'")
    await store.write(  # the revoke alone, as it lands before the offer's commit
        lambda db: db.execute(
            "UPDATE webhooks SET revoked_at = :at, revoked_by = 'shen' WHERE id = :id",
            {"at": "2026-11-24T03:00:00.000000Z", "id": row["id"]},
        )
    )
    await send_all(app)
    assert receiver.received == []
    assert {(d.status, d.last_error) for d in await hooks.recent()} == {("failed", "revoked")}


@pytest.mark.parametrize(
    ("name", "url", "secret", "naming"),
    [
        ("", "https://partner.example/hook", "", "name"),
        ("x" * 65, "https://partner.example/hook", "", "name"),
        ("p", "ftp://partner.example/hook", "", "url"),
        ("p", "https://", "", "url"),
        ("p", "https://user:pw@partner.example/hook", "", "url"),
        ("p", "https://partner.example/" + "x" * 500, "", "url"),
        ("p", "https://partner.example/\x00", "", "url"),
        ("p", "http://[::1", "", "url"),
        ("p", "http://[zz]/x", "", "url"),
        ("p", "http://partner.example:99999/", "", "url"),
        ("p", "http://partner.example:abc/", "", "url"),
        ("p", "http://partner.example:0/", "", "url"),
        ("p", "https://exa mple.org/hook", "", "url"),
        ("p", "https://%00.org/hook", "", "url"),
        ("p", "https://a..org/hook", "", "url"),
        ("p", "https://xn--/hook", "", "url"),
        ("p", "https://-partner.example/hook", "", "url"),
        ("p", "https://partner.example/ho ok", "", "url"),
        ("p", "https://partner.example/hook", "short", "secret"),
        ("p", "https://partner.example/hook", "秘密" * 10, "secret"),
        ("p", "https://partner.example/hook#top", "", "url"),  # never sent
        ("p", "http://169.254.169.254/latest/meta-data/", "", "url"),  # the cloud's, not theirs
        ("p", "http://[fe80::1]/hook", "", "url"),
        ("p", "http://0.0.0.0/hook", "", "url"),
        ("p", "http://[::]/hook", "", "url"),
        ("p", "http://224.0.0.1/hook", "", "url"),
        ("p", "http://255.255.255.255/hook", "", "url"),
        # The same, as IPv6 maps them (a client connects to the IPv4 address).
        ("p", "http://[::ffff:169.254.169.254]/latest/meta-data/", "", "url"),
        ("p", "http://[::ffff:0.0.0.0]/hook", "", "url"),
        ("p", "http://[::ffff:224.0.0.1]/hook", "", "url"),
        # IPv4 in its old forms: aiohttp refuses to send to them, a resolver reads them as
        # another address than shown (0xa9fea9fe is 169.254.169.254).
        ("p", "http://2852039166/", "", "url"),
        ("p", "http://0251.0376.0251.0376/", "", "url"),
        ("p", "http://0/", "", "url"),
        ("p", "http://0x7f.1:9000/x", "", "url"),
        ("p", "http://0xa9fea9fe/", "", "url"),
        ("p", "http://partner.example.123/", "", "url"),
        ("p", "http://100.100.100.200/latest/meta-data/", "", "url"),  # Alibaba Cloud's
        ("p", "http://[fd00:ec2::254]/latest/meta-data/", "", "url"),  # AWS's, over IPv6
    ],
)
async def test_a_bad_webhook_is_refused_naming_the_field(
    client: Client, clock: Clock, name: str, url: str, secret: str, naming: str
) -> None:
    with pytest.raises(BadWebhook) as refused:
        await client.app[appkeys.WEBHOOKS].register(name, url, secret, "shen", clock())
    assert refused.value.field == naming
    assert await client.app[appkeys.WEBHOOKS].all() == []


async def test_one_address_is_one_webhook_and_a_bridge_on_this_machine_is_taken(
    client: Client, clock: Clock
) -> None:
    """The same address under a second name would get every event twice: refused, naming
    the webhook that has it (free again once that one is revoked). A partner's bridge on
    this machine or the park's network is a usual place for one."""
    hooks = client.app[appkeys.WEBHOOKS]
    await hooks.register("city", "https://city.example/hook", "", "shen", clock())
    with pytest.raises(BadWebhook) as refused:
        await hooks.register("city-2", "https://city.example/hook", "", "shen", clock())
    assert refused.value.field == "url" and refused.value.params == {"name": "city"}
    # Other spellings of that address are that address.
    for same in ("https://CITY.example/hook", "https://city.example:443/hook",
                 "https://city.example./hook", "https://city.example/hook?",
                 "https://city.example/%68ook"):  # fmt: skip
        with pytest.raises(BadWebhook) as refused:
            await hooks.register("city-3", same, "", "shen", clock())
        assert refused.value.params == {"name": "city"}, same
    await hooks.register("city-4", "https://city.example/hook?v=2", "", "shen", clock())
    await hooks.register("root", "https://root.example", "", "shen", clock())
    with pytest.raises(BadWebhook) as refused:  # posted to "/" all the same
        await hooks.register("root-2", "https://root.example/", "", "shen", clock())
    assert refused.value.params == {"name": "root"}
    await hooks.revoke("city", "shen", clock())
    await hooks.register("city-2", "https://city.example/hook", "", "shen", clock())
    for n, url in enumerate(("http://127.0.0.1:9000/in", "http://[::1]:9000/in",
                             "http://10.1.2.3/hook", "http://localhost:9000/in")):  # fmt: skip
        await hooks.register(f"bridge-{n}", url, "", "shen", clock())


async def test_registrations_at_once_under_one_address_or_name_make_one_webhook(
    client: Client, clock: Clock
) -> None:
    """Two heads registering one partner at the same moment (a double click, two consoles):
    the check and the insert are one write, so one registration wins and the other is told
    why; never two webhooks posting every event twice."""
    hooks = client.app[appkeys.WEBHOOKS]
    spellings = ("https://city.example/hook", "https://CITY.example:443/hook",
                 "https://city.example./hook", "https://city.example/%68ook")  # fmt: skip
    tries = [hooks.register(f"city-{n}", url, "", "shen", clock())
             for n, url in enumerate(spellings)]  # fmt: skip
    tries += [hooks.register("port", f"https://port-{n}.example/hook", "", "shen", clock())
              for n in range(3)]  # fmt: skip
    outcomes = await asyncio.gather(*tries, return_exceptions=True)
    made = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, BadWebhook)]
    assert len(made) == 2 and len(refused) == 5, outcomes
    assert sorted(r.field for r in refused) == ["name", "name", "url", "url", "url"]
    active = [h for h in await hooks.all() if h.revoked_at is None]
    assert sorted(h.name for h in active)[1] == "port" and len(active) == 2


async def test_a_post_under_way_when_revoked_is_never_sent_again(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    receiver, url = partner
    app = client.app
    hooks = app[appkeys.WEBHOOKS]
    receiver.hang = asyncio.Event()
    await hooks.register("leaving", url, SECRET, "shen", clock())
    await new_case(client)
    poster, delivery = impatient(app)
    sending = asyncio.create_task(delivery.run_due())
    await receiver.arrived.wait()
    assert await hooks.revoke("leaving", "shen", clock())  # while its POSTs are under way
    await sending  # they time out
    await poster.close()
    receiver.hang.set()
    before = len(receiver.received)
    for _ in range(3):
        clock.now += timedelta(hours=1)
        await send_all(app)
    assert len(receiver.received) == before
    assert {(d.status, d.last_error) for d in await hooks.recent()} == {("failed", "revoked")}


async def test_a_made_secret_is_long_and_a_name_is_active_once(
    client: Client, clock: Clock
) -> None:
    hooks = client.app[appkeys.WEBHOOKS]
    secret = await hooks.register("p", "https://partner.example/hook", "", "shen", clock())
    assert secret.startswith("whsec_") and len(secret) > 40
    with pytest.raises(BadWebhook) as refused:
        await hooks.register("p", "https://other.example/hook", "", "shen", clock())
    assert refused.value.field == "name"


async def test_heads_manage_webhooks_in_the_console(
    client: Client, partner: tuple[Partner, str]
) -> None:
    receiver, url = partner
    await give_password(client.app, "shen")
    await give_password(client.app, "chen")
    await sign_in(client, "chen")
    assert (await client.get("/console/webhooks")).status == 403  # heads and admins only
    await client.post("/console/logout", data={"csrf_token": await console_token(client)})
    await sign_in(client, "shen")
    csrf = await console_token(client, "/console/webhooks")
    resp = await client.post(
        "/console/webhooks", data={"csrf_token": csrf, "name": "town-office", "url": url}
    )
    page = await resp.text()
    secret = re.search(r'id="webhook-secret">([^<]+)<', page)
    assert resp.status == 200 and secret and secret.group(1).startswith("whsec_")
    code = await new_case(client)
    receiver.status = 503
    await send_all(client.app)
    listing = await (await client.get("/console/webhooks")).text()
    assert "town-office" in listing and secret.group(1) not in listing  # shown once
    assert (
        listing.count('data-status="retrying"') == 2 and code in listing and "HTTP 503" in listing
    )
    bad = await client.post(
        "/console/webhooks", data={"csrf_token": csrf, "name": "x", "url": "javascript:alert(1)"}
    )
    assert bad.status == 400 and field_named("url") in await bad.text()
    await client.post("/console/webhooks", data={"csrf_token": csrf, "revoke": "town-office"})
    listing = await (await client.get("/console/webhooks")).text()
    assert listing.count('data-status="failed"') == 2
    assert listing.count(">推送地址已撤销<") == 2  # why, in words (not "revoked")
    forged = await client.post("/console/webhooks", data={"name": "sneaky", "url": url})
    assert forged.status == 403


def test_a_sealed_secret_opens_only_whole_and_with_its_key() -> None:
    sealer = Sealer("k1")
    kept = sealer.seal(SECRET)
    assert sealed(kept) and sealer.unseal(kept) == SECRET and kept != sealer.seal(SECRET)
    assert sealer.unseal(SECRET) == SECRET  # stored in clear before sealing: as it is
    flipped = kept[:20] + ("B" if kept[20] == "A" else "A") + kept[21:]  # one character
    for broken in (kept[:-4] + "AAAA", flipped, "sealed:v1:", kept[:40]):
        with pytest.raises(Unsealable):
            sealer.unseal(broken)
    with pytest.raises(Unsealable):
        Sealer("k2").unseal(kept)


async def test_a_rotated_key_reads_the_secrets_the_previous_one_sealed(
    client: Client, partner: tuple[Partner, str], clock: Clock
) -> None:
    """After HOTLINE_SECRET_KEY is rotated (the old one in HOTLINE_SECRET_KEY_PREVIOUS),
    `serve` seals each webhook secret again with the new key when it starts, and deliveries
    are signed as before; the old key can then be dropped."""
    receiver, url = partner
    app = client.app
    await app[appkeys.WEBHOOKS].register("city-12345", url, SECRET, "shen", clock())
    [before] = await app[appkeys.STORE].webhooks.all()
    settings = app[appkeys.SETTINGS]
    new = "the-new-secret-key-after-a-leak"
    changed = dataclasses.replace(
        settings, secret_key=new, previous_secret_keys=(settings.secret_key,)
    )
    async with TestClient(TestServer(create_app(changed, clock=clock))) as rotated:
        [after] = await rotated.app[appkeys.STORE].webhooks.all()
        assert after.secret != before.secret and Sealer(new).unseal(after.secret) == SECRET
        assert await rotated.app[appkeys.WEBHOOKS].seal_older() == 0  # once
        code = await new_case(rotated)
        await route_all(rotated.app)
        await send_all(rotated.app)
    now = int(clock().timestamp())
    mine = [r for r in receiver.received if r["json"]["data"]["code"] == code]
    assert mine and all(verify(SECRET, r["headers"]["Hotline-Signature"], r["body"], now=now)
                        for r in mine)  # fmt: skip
