"""Router consumer: store-then-ack, idempotency, reclaiming, dead letters."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from sqlalchemy import exc as sa_exc

from hotline.queue import keys
from hotline.queue.intake import IntakeQueue
from hotline.queue.router import RouterConsumer
from hotline.service.cases import Case, Intake
from hotline.service.config import demo_config_path
from hotline.service.configfile import load_config
from hotline.service.links import Links
from hotline.service.notify import Notifier
from hotline.service.outbox import Outbox
from hotline.service.routing import RoutingPolicy
from hotline.service.store import Store
from hotline.service.store.cases import NewCase, Stored
from hotline.service.store.database import StoreUnavailable
from hotline.service.store.database import unavailable as store_unavailable
from hotline.service.tracking import Moved, Tracked, track
from tests.helpers import entries

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
POLICY = RoutingPolicy(load_config(demo_config_path()))


async def policy() -> RoutingPolicy:
    return POLICY


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = await Store.open(db_url)
    await store.accounts.sync(POLICY.config.members)
    yield store
    await store.close()


def consumer(client: redis.Redis, store: Store, name: str = "c1", **kw: Any) -> RouterConsumer:
    return RouterConsumer(client, store.cases, policy, lambda: NOW, consumer=name, **kw)


def intake(key: str, at: datetime = NOW) -> Intake:
    return Intake(key=key, channel="web", text="hello", received_at=at, language="en")


async def test_burst_routes_everything_and_empties_the_stream(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    codes = [(await queue.submit(intake(f"web:{i}"))).code for i in range(5)]
    assert await consumer(redis_client, store).run_burst() == 5
    for code in codes:
        case = await store.cases.by_code(code)
        assert case is not None and case.status == "assigned" and case.assignee_id == "zhu"
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0
    pending = await redis_client.xpending(keys.INTAKE_STREAM, keys.ROUTER_GROUP)
    assert pending["pending"] == 0
    # Stored: the store answers for their codes now, Redis keeps only the backlog.
    assert await redis_client.hlen(keys.UNROUTED_CODES) == 0
    tracked = await track(store, queue, codes[0])
    assert isinstance(tracked, Tracked) and tracked.case is not None


async def test_a_retry_older_than_the_window_is_stored_once_and_its_code_leads_there(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path, idempotency_window=timedelta(milliseconds=200))
    first = await queue.submit(intake("web:kiosk-offline-1"))
    assert await consumer(redis_client, store).run_burst() == 1
    await asyncio.sleep(0.3)  # Redis forgets the intake key
    late = await queue.submit(intake("web:kiosk-offline-1"))
    assert late.new and late.code != first.code
    assert await consumer(redis_client, store).run_burst() == 1
    assert await store.cases.by_code(late.code) is None  # no second case
    assert await track(store, queue, late.code) == Moved(first.code)
    assert await redis_client.hlen(keys.UNROUTED_CODES) == 0


@pytest.mark.parametrize(
    ("local_time", "member"),
    [
        ("2026-11-23T08:29:59", "wang"),
        ("2026-11-23T08:30:00", "chen"),
        ("2026-11-24T08:29:59", "chen"),
        ("2026-11-24T08:30:00", "zhu"),
        ("2026-11-26T08:30:00", "chen"),
    ],
)
async def test_assignee_is_on_duty_at_receipt(
    redis_client: redis.Redis, store: Store, tmp_path: Path, local_time: str, member: str
) -> None:
    at = datetime.fromisoformat(local_time + "+08:00")
    submitted = await IntakeQueue(redis_client, tmp_path).submit(intake("web:x", at))
    # Routed much later: the shift at receipt counts, not the shift at routing.
    late = RouterConsumer(redis_client, store.cases, policy, lambda: at + timedelta(days=1))
    await late.run_burst()
    case = await store.cases.by_code(submitted.code)
    assert case is not None and case.assignee_id == member


async def test_redelivered_entry_makes_one_case(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    submitted = await queue.submit(intake("web:dup"))
    entry = (await entries(redis_client, keys.INTAKE_STREAM))[0]
    await consumer(redis_client, store).run_burst()
    # The same entry delivered again (e.g. an ack lost with a crash):
    await redis_client.xadd(keys.INTAKE_STREAM, dict(entry[1].items()))
    await consumer(redis_client, store).run_burst()
    assert await store.cases.count() == 1
    case = await store.cases.by_code(submitted.code)
    assert case is not None


class FlakyStore:
    """A real store whose create_case fails the first `failures` times (with `error`)."""

    def __init__(
        self,
        store: Store,
        failures: int,
        error: Callable[[], Exception] = lambda: RuntimeError("a bug"),
    ) -> None:
        self.store = store
        self.failures = failures
        self.error = error

    async def create_many(
        self, new: Sequence[NewCase], now: datetime
    ) -> tuple[list[Stored], list[int]]:
        if self.failures > 0:
            self.failures -= 1
            raise self.error()
        return await self.store.cases.create_many(new, now)

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]:
        return await self.store.cases.add_message(code, intake, now)


async def test_entry_is_acknowledged_only_after_the_case_is_stored(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:flaky"))
    flaky = FlakyStore(store, failures=1)
    c = RouterConsumer(redis_client, flaky, policy, lambda: NOW, consumer="c1")
    await c.ensure_group()
    entries = await c._read(">")
    assert not await c.handle(*entries[0])
    # Not stored, so still pending and still in the stream.
    assert (await redis_client.xpending(keys.INTAKE_STREAM, keys.ROUTER_GROUP))["pending"] == 1
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 1
    assert await c.run_burst() == 1  # its own pending entry is retried
    assert await store.cases.count() == 1
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0


async def test_entries_of_a_dead_consumer_are_reclaimed(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:stuck"))
    dead = consumer(redis_client, store, "dead")
    await dead.ensure_group()
    assert len(await dead._read(">")) == 1  # delivered, then the consumer died
    survivor = consumer(redis_client, store, "alive", claim_idle_ms=0)
    assert await survivor.run_burst() == 1
    assert await store.cases.count() == 1


async def test_poison_entries_are_dead_lettered(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await redis_client.xadd(keys.INTAKE_STREAM, {"code": "AAAAAAA", "intake": "{not json"})
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:fine"))
    assert await consumer(redis_client, store).run_burst() == 2
    assert await store.cases.count() == 1
    dead = await entries(redis_client, keys.INTAKE_DEAD)
    assert len(dead) == 1 and b"malformed" in dead[0][1][b"reason"]


async def test_repeated_failures_are_dead_lettered_not_retried_forever(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:doomed"))
    flaky = FlakyStore(store, failures=100)
    c = RouterConsumer(redis_client, flaky, policy, lambda: NOW, consumer="c1", max_failures=3)
    assert await c.run_burst() == 1
    dead = await entries(redis_client, keys.INTAKE_DEAD)
    assert len(dead) == 1 and b"failed 3 times" in dead[0][1][b"reason"]
    assert (await redis_client.xpending(keys.INTAKE_STREAM, keys.ROUTER_GROUP))["pending"] == 0


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _pg(sqlstate: str) -> Exception:
    """What SQLAlchemy raises for an asyncpg error of this SQLSTATE."""
    return sa_exc.DBAPIError("INSERT ...", {}, _PgError(sqlstate))


@pytest.mark.parametrize(
    "error",
    [
        lambda: sqlite3.OperationalError("disk I/O error"),
        lambda: sqlite3.OperationalError("database is locked"),
        lambda: _pg("57P03"),  # cannot connect now: starting up, shutting down, a failover
        lambda: _pg("25006"),  # read-only: the standby that was the primary's
        lambda: _pg("53100"),  # disk full
        lambda: _pg("55000"),  # "database is not currently accepting connections"
        lambda: _PgError("57P01"),  # asyncpg's own, unwrapped: terminated by an administrator
        lambda: StoreUnavailable("the database cannot be reached: ConnectionRefusedError"),
    ],
)
async def test_a_database_that_is_down_sets_no_request_aside(
    redis_client: redis.Redis, store: Store, tmp_path: Path, error: Callable[[], Exception]
) -> None:
    """Failing again and again because the database cannot take work (restarting, failing
    over, out of disk) is no fault of the request: it waits, its failures uncounted, and is
    stored once the database is back, however long that took. A request's own fault still
    counts (the test above)."""
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:waits"))
    flaky = FlakyStore(store, failures=6, error=error)
    c = RouterConsumer(redis_client, flaky, policy, lambda: NOW, consumer="c1", max_failures=3)
    for _ in range(6):
        with pytest.raises(
            (sqlite3.OperationalError, sa_exc.DBAPIError, StoreUnavailable, _PgError)
        ) as raised:
            await c.run_burst()
        assert store_unavailable(raised.value)
    assert await c.run_burst() == 1
    assert await store.cases.count() == 1
    assert await entries(redis_client, keys.INTAKE_DEAD) == []
    assert await redis_client.hlen(c.failures) == 0


def test_a_request_s_own_database_errors_are_not_the_database_down() -> None:
    """A bad value, a broken constraint, our own SQL or schema wrong: the entry's fault or
    ours, counted (and dead-lettered), never waited on for ever."""
    own = [
        _pg("23505"), _pg("22001"), sqlite3.IntegrityError("UNIQUE"), RuntimeError(),
        sqlite3.OperationalError("no such table: cases"),
        sqlite3.OperationalError("too many SQL variables"),
        sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such column: x")),
        # asyncpg refusing a parameter of the wrong type, as SQLAlchemy hands it over.
        sa_exc.InterfaceError("INSERT", {}, Exception("invalid input for query argument $1")),
    ]  # fmt: skip
    for error in own:
        assert not store_unavailable(error), error
    wrapped = sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("disk I/O error"))
    assert store_unavailable(wrapped)


async def test_dead_letters_put_back_once_the_cause_is_fixed_are_stored_once(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    """The database refused every try (a bug, a worker of an older version): the intakes
    went to the dead letters. Put back once it is fixed, each is stored, once,
    whatever the tries before; put back twice, the second time finds nothing."""
    from hotline.queue.deadletters import dead_letters, put_back

    queue = IntakeQueue(redis_client, tmp_path)
    codes = [(await queue.submit(intake(f"web:doomed-{n}"))).code for n in range(2)]
    flaky = FlakyStore(store, failures=100)
    c = RouterConsumer(redis_client, flaky, policy, lambda: NOW, consumer="c1", max_failures=2)
    await c.run_burst()
    found = await dead_letters(redis_client)
    assert [d.stream for d in found] == ["intake", "intake"]
    assert all("a bug" in d.reason and d.fields["kind"] == "case" for d in found)
    assert sorted(d.fields["code"] for d in found) == sorted(codes)
    assert "intake" not in found[0].fields  # the request's text is not listed
    assert await dead_letters(redis_client, "outbound") == []
    assert all(d.original.count("-") == 1 for d in found)  # where each stood
    moved = [await put_back(redis_client, "intake", d.id) for d in found]
    assert all(done for done, _ in moved)
    assert await dead_letters(redis_client) == []
    again = await put_back(redis_client, "intake", found[0].id)
    assert again == (False, "no such dead letter")
    assert await consumer(redis_client, store).run_burst() == 2
    assert await store.cases.count() == 2
    stored = [await store.cases.by_code(code) for code in codes]
    assert all(case is not None for case in stored)


async def test_code_conflict_is_dead_lettered(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await store.cases.create("AAAAAAA", intake("web:first"), "chen", "on-duty", NOW)
    other = intake("web:second").to_json()
    await redis_client.xadd(keys.INTAKE_STREAM, {"code": "AAAAAAA", "intake": other})
    assert await consumer(redis_client, store).run_burst() == 1
    assert await store.cases.count() == 1
    assert len(await entries(redis_client, keys.INTAKE_DEAD)) == 1


async def test_entries_of_a_consumer_whose_heartbeat_is_gone_are_reclaimed_at_once(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:held-by-live"))
    live = consumer(redis_client, store, "live")
    await live.ensure_group()
    await live.beat(force=True)
    assert len(await live._read(">")) == 1  # delivered; its consumer is busy, not dead
    await IntakeQueue(redis_client, tmp_path).submit(intake("web:held-by-dead"))
    dead = consumer(redis_client, store, "dead")
    assert len(await dead._read(">")) == 1  # delivered, then killed: no heartbeat
    # The default 60 s idle timeout; a heartbeat of 0.2 s, so the dead one's entry is "idle
    # for a heartbeat" quickly (a fresh delivery is never claimed).
    survivor = consumer(redis_client, store, "survivor", heartbeat_ms=200)
    await asyncio.sleep(0.3)
    assert await survivor.run_burst() == 1  # the dead one's entry, not the live one's
    assert await store.cases.count() == 1
    pending: Any = await redis_client.xpending(keys.INTAKE_STREAM, keys.ROUTER_GROUP)
    assert pending["pending"] == 1 and pending["consumers"][0]["name"] == b"live"


async def test_a_follow_up_waits_for_its_case_instead_of_being_dead_lettered(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    follow_up = intake("sms:SMlater").to_json()
    await redis_client.xadd(
        keys.INTAKE_STREAM, {"kind": "message", "code": "BBBBBBB", "intake": follow_up}
    )
    c = consumer(redis_client, store, max_failures=2)
    for _ in range(5):  # more rounds than max_failures: waiting is not failing
        assert await c.run_burst() == 0
    assert await redis_client.xlen(keys.INTAKE_DEAD) == 0
    await store.cases.create("BBBBBBB", intake("web:first"), "chen", "on-duty", NOW)
    assert await c.run_burst() == 1  # its case is there now: the message joins it
    case = await store.cases.by_code("BBBBBBB")
    assert case is not None and len(await store.cases.messages(case.id)) == 1
    old = consumer(redis_client, store, wait_at_most_ms=0)
    await redis_client.xadd(
        keys.INTAKE_STREAM,
        {"kind": "message", "code": "CCCCCCC", "intake": intake("sms:SMorphan").to_json()},
    )
    await asyncio.sleep(0.01)  # older than 0 ms (a fast machine read it in the same ms)
    await old.run_burst()  # waited long enough: a person looks at it
    assert await redis_client.xlen(keys.INTAKE_DEAD) == 1


class CountingStore:
    """The real store's cases, counting the batches the router stores."""

    def __init__(self, store: Store, fail_batches_over: int | None = None) -> None:
        self.store = store
        self.batches: list[int] = []
        self.fail_batches_over = fail_batches_over

    async def create_many(
        self, new: Sequence[NewCase], now: datetime
    ) -> tuple[list[Stored], list[int]]:
        self.batches.append(len(new))
        if self.fail_batches_over is not None and len(new) > self.fail_batches_over:
            raise RuntimeError("a batch this size fails")
        return await self.store.cases.create_many(new, now)

    async def add_message(self, code: str, intake: Intake, now: datetime) -> tuple[Case, bool]:
        return await self.store.cases.add_message(code, intake, now)


def notifier_for(store: Store) -> Notifier:
    return Notifier(Outbox(store.outbox), lambda: POLICY.config, Links(""), lambda: NOW)


def sms(key: str, phone: str) -> Intake:
    return Intake(key=key, channel="sms", text="路灯不亮", received_at=NOW, language="zh-CN",
                  phone=phone)  # fmt: skip


async def test_a_batch_is_stored_in_one_write_with_its_texts_and_poison_set_apart(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    await store.cases.create("TAKEN01", intake("web:taken"), "chen", "on-duty", NOW)
    queue = IntakeQueue(redis_client, tmp_path)
    codes = [(await queue.submit(sms(f"sms:SM{i}", f"+861390000{i:04d}"))).code for i in range(20)]
    await redis_client.xadd(keys.INTAKE_STREAM, {"code": "AAAAAAA", "intake": "{not json"})
    await redis_client.xadd(
        keys.INTAKE_STREAM, {"code": "TAKEN01", "intake": intake("web:other").to_json()}
    )
    codes += [(await queue.submit(intake(f"web:{i}"))).code for i in range(10)]
    counting = CountingStore(store)
    calls = 0

    async def counted_policy() -> RoutingPolicy:
        nonlocal calls
        calls += 1
        return POLICY

    router = RouterConsumer(redis_client, counting, counted_policy, lambda: NOW,
                            notifier=notifier_for(store), consumer="c1")  # fmt: skip
    assert await router.run_burst() == 32
    # One read, one policy, one write: 30 intakes and the one whose code is taken.
    assert counting.batches == [31] and calls == 1
    assert await store.cases.count() == 31
    dead = await entries(redis_client, keys.INTAKE_DEAD)
    reasons = sorted(fields[b"reason"].decode() for _, fields in dead)
    assert len(reasons) == 2
    assert "taken by another intake" in reasons[0] and "malformed" in reasons[1]
    # Each case has its events and texts: the assignee (zhu) for all, the submitter for
    # the 20 that left a number; the batch's one outbound entry names every text.
    texts: list[int] = []
    for i, code in enumerate(codes):
        case = await store.cases.by_code(code)
        assert case is not None and case.assignee_id == "zhu"
        assert [e.kind for e in await store.cases.events(case.id)] == ["received", "assigned"]
        sent = await store.outbox.for_case(case.id)
        purposes = sorted(item.purpose_key for item in sent)
        expected = [f"assigned:{case.id}:zhu"] + ([f"notice:{case.id}:assigned"] if i < 20 else [])
        assert purposes == expected
        assert len(await store.cases.messages(case.id)) == (1 if i < 20 else 0)
        texts.extend(item.id for item in sent)
    [(_, fields)] = await entries(redis_client, keys.OUTBOUND_STREAM)
    named = [int(item_id) for item_id in fields[b"ids"].split(b",")]
    assert len(named) == 50 and sorted(named) == sorted(texts)
    assert await redis_client.xlen(keys.INTAKE_STREAM) == 0
    assert (await redis_client.xpending(keys.INTAKE_STREAM, keys.ROUTER_GROUP))["pending"] == 0


async def test_a_failing_batch_is_retried_one_entry_at_a_time(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    codes = [(await queue.submit(intake(f"web:{i}"))).code for i in range(5)]
    counting = CountingStore(store, fail_batches_over=1)
    router = RouterConsumer(redis_client, counting, policy, lambda: NOW, consumer="c1")
    assert await router.run_burst() == 5
    assert counting.batches == [5, 1, 1, 1, 1, 1]
    for code in codes:
        assert await store.cases.by_code(code) is not None
    assert await redis_client.xlen(keys.INTAKE_DEAD) == 0
    assert await redis_client.hlen(keys.failures(keys.INTAKE_STREAM)) == 0


async def test_a_redelivered_batch_changes_nothing_and_queues_no_text_twice(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    for i in range(6):
        await queue.submit(sms(f"sms:SMre{i}", f"+8613900001{i:03d}"))
    sent = await entries(redis_client, keys.INTAKE_STREAM)
    router = RouterConsumer(redis_client, store.cases, policy, lambda: NOW,
                            notifier=notifier_for(store), consumer="c1")  # fmt: skip
    assert await router.run_burst() == 6
    rows = await store.fetch("SELECT count(*) AS n FROM outbox")
    for _, fields in sent:  # every entry again, as after a crash before the acks
        await redis_client.xadd(keys.INTAKE_STREAM, dict(fields.items()))
    assert await router.run_burst() == 6
    assert await store.cases.count() == 6
    assert await store.fetch("SELECT count(*) AS n FROM outbox") == rows
    outbound = await entries(redis_client, keys.OUTBOUND_STREAM)  # the first batch's alone
    assert [len(fields[b"ids"].split(b",")) for _, fields in outbound] == [rows[0]["n"]] == [12]
    assert await store.fetch("SELECT count(*) AS n FROM events") == [{"n": 12}]


async def test_a_follow_up_in_the_same_batch_as_its_case_joins_it(
    redis_client: redis.Redis, store: Store, tmp_path: Path
) -> None:
    queue = IntakeQueue(redis_client, tmp_path)
    first = await queue.submit(sms("sms:SMa", "+8613900002000"), thread_within=timedelta(hours=1))
    again = await queue.submit(sms("sms:SMb", "+8613900002000"), thread_within=timedelta(hours=1))
    assert again.follow_up and again.code == first.code
    assert await consumer(redis_client, store).run_burst() == 2
    case = await store.cases.by_code(first.code)
    assert case is not None and len(await store.cases.messages(case.id)) == 2
