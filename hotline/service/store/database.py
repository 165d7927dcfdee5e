"""The database: SQLite (aiosqlite) or PostgreSQL (asyncpg, through SQLAlchemy's async engine).

Writes go through `Database.write(fn)`: `fn` gets a `Tx` and runs in one transaction that is
serializable on both engines — on SQLite one writer at a time (a lock in the process and
BEGIN IMMEDIATE across processes), on PostgreSQL the SERIALIZABLE level, with the whole `fn`
run again when PostgreSQL finds it raced another transaction. So a read-check-write inside
`fn` is safe against other processes on either engine; `fn` must touch nothing but the
database. A guarded write (`write(fn, guarded=True)`) runs at READ COMMITTED on PostgreSQL
instead: see `Database.write`. Reads outside a write see committed data, one statement at a
time.

The schema is `schema.py`; Alembic migrates a database to it on open, under a lock (SQLite's
write lock, PostgreSQL's advisory lock) so that several processes starting at once migrate
once. SQL is written with named parameters (`:name`) in the subset both engines share: the
same text goes to aiosqlite as it is and to asyncpg through SQLAlchemy's `text()`. Where
many rows or values are sent, `Tx.insert` and `Tx.one_of` write each engine's own SQL
(PostgreSQL: arrays, unnested or `= ANY`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Table, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Connection, CursorResult, RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hotline.service.store import bigrams

log = logging.getLogger(__name__)

T = TypeVar("T")
Row = RowMapping | dict[str, Any]
# What the two drivers raise: a constraint refused the write / any database error.
IntegrityError = (sqlite3.IntegrityError, sa_exc.IntegrityError)
DatabaseError = (sqlite3.Error, DBAPIError)
Params = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
# SQLSTATE classes of a database that cannot take any work for now: a connection problem
# (08), too little of something (53: disk full, too many connections), a database not in
# the state to take it (55: not accepting connections, a lock not available), an
# operator's doing (57: shutting down, starting up, in recovery after a failover), the
# system's (58: I/O).
_DOWN_CLASSES = ("08", "53", "55", "57", "58")
_READ_ONLY = "25006"  # a standby that was the primary's: read-only until promoted
# SQLite's operational errors that say the file cannot be used now (not that the SQL or the
# schema is wrong, as "no such table" or "too many SQL variables" do).
_SQLITE_DOWN = (
    "database is locked", "database table is locked", "disk i/o error",
    "unable to open database", "database or disk is full", "readonly database",
)  # fmt: skip


class StoreUnavailable(Exception):
    """The database could not be reached: its connection refused, reset or timed out."""


# Whatever a store call may raise of its own (not our code's TypeError or KeyError): for a
# caller that must go on without the store (an SMS taken all the same).
STORE_FAULTS = (sqlite3.Error, sa_exc.SQLAlchemyError, StoreUnavailable, OSError)


def unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached or written for now, not that the
    work (or our code) was wrong: work that met it is tried again later, never set aside as
    poison, and a page says "try again shortly". A connection refused or lost, the pool's
    wait run out, PostgreSQL's states above (asyncpg's own, such as "database is not
    currently accepting connections", carry theirs too), SQLite's file locked, full or
    failing."""
    if isinstance(
        exc, StoreUnavailable | OSError | sa_exc.TimeoutError | sa_exc.DisconnectionError
    ):
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError):
        return any(words in str(orig).lower() for words in _SQLITE_DOWN)
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = getattr(orig, "sqlstate", None)  # SQLAlchemy's adapter's, or asyncpg's own
    return isinstance(state, str) and (state[:2] in _DOWN_CLASSES or state == _READ_ONLY)


# The first Alembic revision: the schema of the releases that numbered their SQLite schema by
# hand (PRAGMA user_version, up to 6). Files from them are adopted into it (_adopt_legacy).
BASELINE = "0001"
LEGACY_VERSION = 6
# PostgreSQL's advisory lock key for migrations (any fixed 64-bit number, ours alone).
MIGRATION_LOCK = 0x686F746C696E65
# PostgreSQL answers these when a serializable transaction lost a race: run it again.
RETRY_SQLSTATES = {"40001", "40P01"}
RETRIES = 20


class UnsupportedDatabase(ValueError):
    """HOTLINE_DATABASE_URL names an engine the service does not run on."""


def async_url(url: str) -> URL:
    """`sqlite:///path` or `postgresql://...` with the async driver the service uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        # libpq's sslmode=require (what managed PostgreSQL hands out) is asyncpg's ssl=require.
        query = dict(parsed.query)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query)
    raise UnsupportedDatabase(
        f"HOTLINE_DATABASE_URL: {backend!r} is not supported; use postgresql://... (or leave it"
        " unset for SQLite in the data dir)"
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _first(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


def _first_value(row: Row | None) -> Any:
    return next(iter(row.values())) if row is not None else None


class Tx:
    """One write transaction: what a repository's `..._in(db, ...)` functions are given."""

    async def execute(self, sql: str, params: Params = None) -> int:
        """Run one statement (once per parameter set, given a list); the rows it changed."""
        raise NotImplementedError

    async def rows(self, sql: str, params: Params = None) -> list[Row]:
        raise NotImplementedError

    async def row(self, sql: str, params: Params = None) -> Row | None:
        return _first(await self.rows(sql, params))

    async def scalar(self, sql: str, params: Params = None) -> Any:
        return _first_value(await self.row(sql, params))

    def one_of(self, column: str, name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
        """`column` is one of `values`: the condition and its parameters (named from `name`)."""
        marks, params = in_list(name, values)
        return f"{column} IN {marks}", params

    async def insert(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        tail: str = "",
        *,
        returning: str = "",
    ) -> list[Row] | None:
        """Insert `rows` (mappings with the same keys: `table`'s columns), each followed by
        `tail` (an ON CONFLICT clause). With `returning` (columns), the rows inserted where
        the engine gives them back from the batch, None where it does not (the caller looks
        them up). SQLite: one statement per row, sent as one batch, which returns nothing."""
        if not rows:
            return [] if returning else None
        return await self._insert(table, tuple(rows[0]), rows, tail, returning)

    async def _insert(
        self,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Mapping[str, Any]],
        tail: str,
        returning: str,
    ) -> list[Row] | None:
        await self.execute(_insert_sql(table.name, columns, tail), rows)
        return None


@functools.lru_cache(maxsize=32)
def _insert_sql(table: str, columns: tuple[str, ...], tail: str) -> str:
    names, marks = ", ".join(columns), ", ".join(":" + c for c in columns)
    return f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}"  # noqa: S608 - names are ours


@functools.lru_cache(maxsize=32)
def _unnest_sql(table: Table, columns: tuple[str, ...], tail: str, returning: str) -> str:
    """One INSERT for many rows on PostgreSQL: each column one array parameter, unnested."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(
        f"CAST(:{c} AS {table.c[c].type.compile(dialect=dialect)}[])" for c in columns
    )
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) {tail}"  # noqa: S608 - names are ours
    return f"{sql} RETURNING {returning}" if returning else sql


Conn = Tx  # what the repositories' `..._in(db, ...)` functions are handed


def in_list(name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name0, :name1, ...)` and its parameters, for `column IN ...`."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    if not params:
        raise ValueError(f"an empty list for {name}")
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


def _changed(result: CursorResult[Any]) -> int:
    return max(result.rowcount, 0)


def _rows(result: CursorResult[Any]) -> list[Row]:
    return list(result.mappings()) if result.returns_rows else []


class Database:
    """All writes go through `write`; reads through `fetch`, `fetch_one`, `scalar`."""

    dialect = ""  # "sqlite" or "postgresql": for the few reads that differ (full-text search)

    @classmethod
    async def open(cls, url: str) -> Database:
        target = async_url(url)
        if target.get_backend_name() == "sqlite":
            return await SqliteDatabase.open_file(Path(target.database or ""))
        return await PostgresDatabase.open_url(target)

    async def close(self) -> None:
        raise NotImplementedError

    async def write(self, fn: Callable[[Tx], Awaitable[T]], *, guarded: bool = False) -> T:
        """Run `fn` in one serializable write transaction; an exception rolls it back whole.

        `guarded`: `fn` is safe as it stands when others write at once: its updates are
        conditional changes of rows it names (UPDATE ... WHERE id = ... AND status = ...),
        and its inserts skip on a unique key, looking up afterwards what they skipped (the
        router's batch). PostgreSQL then runs it at READ COMMITTED (a row changed meanwhile
        is checked again against the condition; an insert waits for a conflicting one's
        commit), so it never aborts, or is aborted by, a serializable transaction whose
        pages it touched; SQLite serializes every write anyway."""
        raise NotImplementedError

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        """Rows of a read-only query (committed data)."""
        raise NotImplementedError

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """`fn` with a synchronous connection: for tools (Alembic's schema comparison)."""
        raise NotImplementedError

    async def fetch_aside(self, sql: str, params: Params = None) -> list[Row]:
        """A long read (a report) on a connection of its own: the console's reads do not
        queue behind it, and several run at once."""
        return await self.fetch(sql, params)

    async def fetch_one(self, sql: str, params: Params = None) -> Row | None:
        return _first(await self.fetch(sql, params))

    async def scalar(self, sql: str, params: Params = None) -> Any:
        return _first_value(await self.fetch_one(sql, params))


# -- PostgreSQL: asyncpg through SQLAlchemy's async engine -----------------------------------


class _AsyncTx(Tx):
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params = None) -> int:
        return _changed(await self.conn.execute(text(sql), params))

    async def rows(self, sql: str, params: Params = None) -> list[Row]:
        return _rows(await self.conn.execute(text(sql), params))

    def one_of(self, column: str, name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
        # One array parameter: the same statement, prepared once, for any number of values.
        return f"{column} = ANY(:{name})", {name: list(values)}

    async def _insert(
        self,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Mapping[str, Any]],
        tail: str,
        returning: str,
    ) -> list[Row] | None:
        # One statement for them all, a column to an array: row by row, asyncpg sends a
        # message per row and SQLAlchemy processes each row's parameters (5-10% of the
        # router's drain), and RETURNING saves the look-up after.
        arrays = {c: [row[c] for row in rows] for c in columns}
        found = await self.rows(_unnest_sql(table, columns, tail, returning), arrays)
        return found if returning else None


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    """asyncpg's own errors of a server it cannot reach (refused, reset, timed out) come
    through SQLAlchemy as they are, plain OSErrors: named for what they are here, so a page
    or a consumer can tell the database down from any other OSError."""
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"the database cannot be reached: {exc!r}") from exc


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # One pool, two ways to use it: writes begin SERIALIZABLE transactions, reads run
        # each statement on its own (no BEGIN and ROLLBACK round trips around it).
        self._writer = engine.execution_options(isolation_level="SERIALIZABLE")
        self._guarded = engine.execution_options(isolation_level="READ COMMITTED")
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")

    @classmethod
    async def open_url(cls, url: URL) -> PostgresDatabase:
        # No pre-ping: it costs a BEGIN and a ROLLBACK on every checkout (~15% of the
        # router's time). A connection the server dropped fails on first use instead;
        # SQLAlchemy then invalidates the pool, and `fetch` and `write` run once more on a
        # fresh connection (a write only if it failed before its COMMIT was sent).
        engine = create_async_engine(url, pool_size=5, max_overflow=5)
        event.listen(engine.sync_engine, "connect", _plan_each_time)
        try:
            # Migrate at READ COMMITTED: a process that waited for the lock must see what the
            # one before it did (a serializable snapshot would not).
            async with engine.begin() as conn:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
                await conn.run_sync(_upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def write(self, fn: Callable[[Tx], Awaitable[T]], *, guarded: bool = False) -> T:
        with _reachable():
            return await self._write(fn, guarded=guarded)

    async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, guarded: bool) -> T:
        writer = self._guarded if guarded else self._writer
        for attempt in range(RETRIES):
            committing = False
            try:
                async with writer.begin() as conn:
                    # A write's statements look rows up by key, where a generic plan is as
                    # good, and the router's batches run each insert hundreds of times:
                    # planning every row cost its drain a quarter (see _plan_each_time).
                    await conn.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
                    result = await fn(_AsyncTx(conn))
                    committing = True  # leaving the block commits: its fate is unknown
                return result
            except DBAPIError as exc:
                lost = exc.connection_invalidated and not committing
                if not lost and getattr(exc.orig, "sqlstate", None) not in RETRY_SQLSTATES:
                    raise
                if attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise AssertionError("unreachable")

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        for attempt in range(2):
            try:
                with _reachable():
                    async with self._reader.connect() as conn:
                        return _rows(await conn.execute(text(sql), params))
            except DBAPIError as exc:
                if not exc.connection_invalidated or attempt:
                    raise  # a dropped connection is replaced once; anything else is raised
        raise AssertionError("unreachable")

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self._reader.connect() as conn:
            return await conn.run_sync(fn)


def _plan_each_time(dbapi_connection: Any, _record: Any) -> None:
    """Plan every statement for its own values. asyncpg prepares each statement, and after
    five runs PostgreSQL may switch to a generic plan made without the values: a search for a
    rare phrase then walked every case newest first (0.6 s at 300,000 cases, from the sixth
    search on) instead of asking the trigram index (5 ms). Set on each new connection, as a
    statement rather than a startup parameter, which poolers may refuse; on asyncpg's own
    connection, outside the transaction SQLAlchemy's adapter would open (and roll back).
    Writes set it back to `auto` for their own transaction (`PostgresDatabase.write`)."""
    dbapi_connection.run_async(lambda conn: conn.execute("SET plan_cache_mode = force_custom_plan"))


# -- SQLite: aiosqlite ---------------------------------------------------------------------


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


class _SqliteTx(Tx):
    """Statements go to aiosqlite as written: both engines take the same `:name` SQL, and
    a statement is one hop to the connection's thread (SQLAlchemy's aiosqlite adapter
    makes four: cursor, execute, fetch, close — measured at 2.3x the time)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Params = None) -> int:
        if isinstance(params, Sequence):
            cursor = await self.conn.executemany(sql, params)
        else:
            cursor = await self.conn.execute(sql, params)
        return max(cursor.rowcount, 0)

    async def rows(self, sql: str, params: Params = None) -> list[Row]:
        return list(await self.conn.execute_fetchall(sql, params))  # type: ignore[arg-type]


async def _sqlite_connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = _dict_row  # type: ignore[assignment]
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA busy_timeout = 30000")
    # FULL: a commit is on the disk when it returns, so a power cut cannot roll back a batch
    # whose stream entries the router has since acknowledged (NORMAL could: README
    # "Guarantees"; BENCHMARKS "Router drain" has the cost, a few per cent).
    await conn.execute("PRAGMA synchronous = FULL")
    # The triggers that keep the two-character search index call it (migration 0010).
    await conn.create_function(bigrams.FUNCTION, 1, bigrams.bigrams, deterministic=True)
    return conn


TURN_WAIT = 30.0  # seconds a writer waits for its turn, then goes on to SQLite's own lock


class _Waiting:
    """One wait for the turn, in a daemon thread blocked in flock on a descriptor of its
    own: a wait given up (cancelled, or past TURN_WAIT) closes the descriptor once the thread
    has it, so the turn goes straight on to the next writer, and no thread of the default
    executor (which the interpreter joins at exit) is ever left blocked."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.fd = fd
        self.loop = loop
        self.taken: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()
        self._given_up = False
        self._got = False
        threading.Thread(target=self._take, name="sqlite-writer-turn", daemon=True).start()

    def _take(self) -> None:
        with contextlib.suppress(OSError):  # (none expected: the writer then goes on untaken)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        with self._lock:
            if self._given_up:
                _close(self.fd)
                return
            self._got = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self.loop.call_soon_threadsafe(_settle, self.taken)

    def give_up(self) -> bool:
        """Stop waiting; True when the thread had the turn already (then it is ours to
        give back), False when it will give the turn back itself once it gets it."""
        with self._lock:
            self._given_up = True
            return self._got


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class _WriterTurn:
    """The turn to write among the processes on one SQLite file: an exclusive flock on a
    file beside it, taken before BEGIN IMMEDIATE and given back after COMMIT. SQLite's own
    lock has no queue: a writer that finds it taken sleeps and tries again (after 1, 2, 5,
    10, 15 ms ...), so two busy writers kept missing each other's released turns and a
    second worker routed no more than one. A process blocked in flock is woken as soon as
    the turn is given back (not a strict queue: the writer giving it back may take it again
    first). Each write holds the turn on a descriptor of its own, and giving it back is
    closing that descriptor. SQLite's lock still decides who writes: a writer that takes no
    turn (the sqlite3 shell, a migration) is waited for as before, and a writer that waited
    TURN_WAIT for the turn (its holder stopped mid-transaction, say) goes on to SQLite's
    lock and its busy timeout, as before the turn existed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = self._open()  # made now, with the database's owner, so any process can open it
        if os.geteuid() == 0:  # made by root (a CLI command): the service must open it too
            owner = path.with_name(path.name.removesuffix("-writer")).stat()
            with contextlib.suppress(OSError):
                os.fchown(fd, owner.st_uid, owner.st_gid)
        _close(fd)

    def _open(self) -> int:
        return os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fd = await self._wait(fd)  # raising, it has seen to the descriptor
        except BaseException:
            _close(fd)
            raise
        try:
            yield
        finally:
            if fd >= 0:
                _close(fd)

    async def _wait(self, fd: int) -> int:
        """The descriptor holding the turn, or -1 when it was not had within TURN_WAIT."""
        waiting = _Waiting(fd, asyncio.get_running_loop())
        try:
            await asyncio.wait_for(asyncio.shield(waiting.taken), TURN_WAIT)
            return fd
        except TimeoutError:
            log.warning("no SQLite write turn within %.0f s; waiting on SQLite's lock", TURN_WAIT)
            if waiting.give_up():
                return fd
            return -1
        except BaseException:
            if waiting.give_up():
                _close(fd)
            raise


class SqliteDatabase(Database):
    """One writer connection, writes queued behind a lock in the process, a turn among
    processes (`_WriterTurn`) and BEGIN IMMEDIATE (so two never deadlock upgrading a read to
    a write), and a reader connection (WAL: it does not wait for the writer)."""

    dialect = "sqlite"

    ASIDE = 2  # connections for long reads, opened when first needed (one per core here)

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        turn: _WriterTurn | None = None,
    ):
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._turn = turn or _WriterTurn(path.with_name(path.name + "-writer"))
        # At most ASIDE long reads at once, each on an idle connection or on one it opens:
        # so never more than ASIDE connections, and a read whose open fails (or is
        # cancelled) leaves its turn to the next, which opens one itself.
        self._aside_turns = asyncio.Semaphore(self.ASIDE)
        self._aside_idle: list[aiosqlite.Connection] = []
        self._aside_open: list[aiosqlite.Connection] = []
        self._closed = False

    @classmethod
    async def open_file(cls, path: Path) -> SqliteDatabase:
        if sqlite3.sqlite_version_info < (3, 39, 0):  # RETURNING, IS NOT DISTINCT FROM
            raise RuntimeError(f"SQLite 3.39 or newer is needed; found {sqlite3.sqlite_version}")
        await asyncio.to_thread(_migrate_sqlite, path)
        turn = _WriterTurn(path.with_name(path.name + "-writer"))  # before any connection
        writer = await _sqlite_connect(path)
        try:
            reader = await _sqlite_connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader, turn)

    async def close(self) -> None:
        self._closed = True  # a read-aside connection still opening closes itself
        for conn in self._aside_open:
            await conn.close()
        await self._reader.close()
        await self._writer.close()

    async def fetch_aside(self, sql: str, params: Params = None) -> list[Row]:
        # Reads that arrive together (a report's months) wait for a turn: each used to open
        # a connection of its own (and a thread, and a page cache).
        async with self._aside_turns:
            if self._aside_idle:
                conn = self._aside_idle.pop()
            else:
                conn = await self._open_aside()
            try:
                return list(await conn.execute_fetchall(sql, params))  # type: ignore[arg-type]
            finally:
                self._aside_idle.append(conn)

    async def _open_aside(self) -> aiosqlite.Connection:
        """A new connection for reads aside, kept to be closed with the store. A caller
        cancelled meanwhile (a client gone from an export) does not leak it: it is opened
        all the same and left idle for the next read."""

        async def opened() -> aiosqlite.Connection:
            conn = await _sqlite_connect(self.path)
            if self._closed:  # the store closed while it opened (its reader gone too)
                await conn.close()
                raise RuntimeError("the store is closed")
            self._aside_open.append(conn)
            return conn

        opening = asyncio.ensure_future(opened())
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._left_idle)
            raise

    def _left_idle(self, opening: asyncio.Future[aiosqlite.Connection]) -> None:
        if not opening.cancelled() and opening.exception() is None and not self._closed:
            self._aside_idle.append(opening.result())

    async def write(self, fn: Callable[[Tx], Awaitable[T]], *, guarded: bool = False) -> T:
        async with self._lock, self._turn.held():
            try:
                await self._writer.execute("BEGIN IMMEDIATE")
                result = await fn(_SqliteTx(self._writer))
                await self._writer.execute("COMMIT")
            except BaseException:
                # Also when cancelled mid-statement: the statement still runs in aiosqlite's
                # thread, and this ROLLBACK is queued behind it, so no transaction is left
                # open to block every later write.
                await asyncio.shield(self._rollback())
                raise
            return result

    async def _rollback(self) -> None:
        try:
            await self._writer.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "no transaction is active" not in str(exc):
                raise

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        return list(await self._reader.execute_fetchall(sql, params))  # type: ignore[arg-type]

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        def run() -> T:
            engine = create_engine(sqlite_url(self.path))
            event.listen(engine, "connect", _with_functions)
            try:
                with engine.connect() as conn:
                    return fn(conn)
            finally:
                engine.dispose()

        return await asyncio.to_thread(run)


def _with_functions(dbapi_conn: Any, _record: Any = None) -> None:
    """The SQL functions our triggers call (migration 0010), on a pysqlite connection."""
    dbapi_conn.create_function(bigrams.FUNCTION, 1, bigrams.bigrams, deterministic=True)


# -- migrations -------------------------------------------------------------------------


def alembic_config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "hotline.service.store:migrations")
    config.attributes["connection"] = conn
    return config


def _migrate_sqlite(path: Path) -> None:
    """Alembic on a synchronous connection, in one BEGIN IMMEDIATE transaction: SQLite's
    write lock is the migration lock."""
    _prepare_sqlite(path)
    engine = create_engine(sqlite_url(path))

    @event.listens_for(engine, "connect")
    def autocommit(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions as we say, not as pysqlite guesses
        dbapi_conn.execute("PRAGMA busy_timeout = 30000")
        _with_functions(dbapi_conn, _record)

    @event.listens_for(engine, "begin")
    def immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with engine.begin() as conn:
            _upgrade(conn)
    finally:
        engine.dispose()


def _upgrade(conn: Connection) -> None:
    config = alembic_config(conn)
    if conn.dialect.name == "sqlite":
        legacy = _legacy_version(conn)
        if legacy > LEGACY_VERSION:
            raise SchemaTooNew(
                f"the database is at schema version {legacy}, newer than this program knows"
                f" ({LEGACY_VERSION}): upgrade the program"
            )
        if legacy:
            _adopt_legacy(conn, config)
    before = _refuse_newer(conn)
    command.upgrade(config, "head")
    after = MigrationContext.configure(conn).get_current_heads()
    if after != before:
        log.info(
            "database schema migrated from %s to %s",
            ", ".join(before) or "nothing",
            ", ".join(after),
        )


def _adopt_legacy(conn: Connection, config: Config) -> None:
    """A SQLite file from the releases before Alembic (PRAGMA user_version 1..6): its tables
    are set aside, the baseline revision builds the schema exactly as on a new database
    (named constraints included), and the rows are copied over — columns an older file lacks
    take their defaults. Runs in the caller's transaction, under the write lock: all of it or
    nothing, once, whoever starts first."""
    rows = conn.exec_driver_sql(
        "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND"
        " (type = 'table' OR (type IN ('index', 'trigger') AND sql IS NOT NULL))"
    ).all()
    tables = [name for kind, name in rows if kind == "table"]
    for kind, name in rows:
        if kind != "table":
            conn.exec_driver_sql(f'DROP {kind.upper()} "{name}"')
    # Renaming must not rewrite the other tables' references to the new names.
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    for name in tables:
        conn.exec_driver_sql(f'ALTER TABLE "{name}" RENAME TO "_legacy_{name}"')
    command.upgrade(config, BASELINE)
    for name in tables:
        old = {r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("_legacy_{name}")')}
        new = [r[1] for r in conn.exec_driver_sql(f'PRAGMA table_info("{name}")')]
        columns = ", ".join(f'"{c}"' for c in new if c in old)
        conn.exec_driver_sql(
            f'INSERT INTO "{name}" ({columns}) SELECT {columns} FROM "_legacy_{name}"'  # noqa: S608 - names from the file's own schema
        )
        conn.exec_driver_sql(f'DROP TABLE "_legacy_{name}"')
    conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
    conn.exec_driver_sql("PRAGMA user_version = 0")
    log.info("adopted a database from before Alembic (%d tables copied)", len(tables))


def _legacy_version(conn: Connection) -> int:
    """PRAGMA user_version of a SQLite file made before Alembic (0 once Alembic owns it)."""
    tables = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).first()
    if tables is not None:
        return 0
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer program: this one must not touch it."""


@functools.cache
def _known_revisions() -> frozenset[str]:
    """The schema revisions this program's migrations know (read once)."""
    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(rev.revision for rev in scripts.walk_revisions())


def _too_new(revisions: Sequence[str]) -> SchemaTooNew | None:
    known = _known_revisions()
    newer = [rev for rev in revisions if rev not in known]
    if not newer:
        return None
    return SchemaTooNew(
        f"the database is at schema revision {', '.join(newer)}, newer than this program"
        " knows: upgrade the program"
    )


def _refuse_newer(conn: Connection) -> tuple[str, ...]:
    """The revisions the database is at; raises when one is unknown to this program."""
    current = MigrationContext.configure(conn).get_current_heads()
    if (newer := _too_new(current)) is not None:
        raise newer
    return tuple(current)


def _prepare_sqlite(path: Path) -> None:
    """Put the file in WAL mode (kept in the file) before any connection takes a write lock:
    switching later, while another process holds one, can deadlock the two."""
    with contextlib.suppress(FileExistsError):  # a new database: its owner's alone
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        # Switching needs the file to itself, and SQLite answers "locked" at once (without
        # waiting) while another process is switching too: ask again for a while.
        for attempt in range(300):
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                    return
                db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 299:
                    raise
                time.sleep(0.1)
    finally:
        db.close()


# -- SQLite files: backup and check ------------------------------------------------------


def backup_database(source: Path, dest: Path) -> int:
    """A consistent copy of a live SQLite database with SQLite's online backup API (never a
    file copy, which can catch a write half done); returns the number of cases in the copy.
    The copy is one file (rollback journal, not WAL): read from read-only media, it needs
    no file beside it."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
        return int(dst.execute("SELECT count(*) FROM cases").fetchone()[0])
    finally:
        dst.close()
        src.close()


def check_database(path: Path) -> int:
    """Raise unless the file is an intact hotline database this program can run on (at a
    schema revision it knows, or from before Alembic); returns its case count. Opened as
    immutable: nothing is written beside it."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise RuntimeError(f"{path}: {exc}") from exc
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise RuntimeError(f"{path} is damaged: {verdict}")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "alembic_version" in tables:
            revisions = [r[0] for r in db.execute("SELECT version_num FROM alembic_version")]
            if (newer := _too_new(revisions)) is not None:
                raise newer
        elif not 0 < int(db.execute("PRAGMA user_version").fetchone()[0]) <= LEGACY_VERSION:
            raise RuntimeError(f"{path} is not a hotline database (no schema revision)")
        return int(db.execute("SELECT count(*) FROM cases").fetchone()[0])
    except sqlite3.Error as exc:
        raise RuntimeError(f"{path}: {exc}") from exc
    finally:
        db.close()
