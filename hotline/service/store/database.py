"""The SQLite database: one writer connection behind a lock (writes in BEGIN IMMEDIATE), a
separate reader, and the schema versioned with PRAGMA user_version and ordered scripts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")
Conn = aiosqlite.Connection
Row = sqlite3.Row
IntegrityError = sqlite3.IntegrityError


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("hotline.service.store").joinpath("migrations")
    scripts = sorted(
        (int(item.name.split("_", 1)[0]), item.read_text(encoding="utf-8"))
        for item in folder.iterdir()
        if item.name.endswith(".sql")
    )
    versions = [v for v, _ in scripts]
    if versions != list(range(1, len(scripts) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return scripts


async def _connect(path: Path) -> Conn:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class Database:
    """All writes go through `write` (one connection, a lock, BEGIN IMMEDIATE)."""

    def __init__(self, writer: Conn, reader: Conn) -> None:
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Database:
        writer = await _connect(path)
        try:
            await writer.execute("PRAGMA journal_mode = WAL")
            # NORMAL: a commit survives a crash of the process, and a power cut may roll back
            # the last moments of commits (see README "Guarantees"). FULL closes that window
            # at one fsync per transaction: affordable once the router commits in batches.
            await writer.execute("PRAGMA synchronous = NORMAL")
            await _migrate(writer)
            reader = await _connect(path)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()

    async def write(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `fn` in one write transaction; an exception rolls it back whole."""
        async with self._lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                result = await fn(self._writer)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")
            return result

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Rows of a read-only query, on the reader connection."""
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetch_one(self, sql: str, params: tuple[Any, ...] = ()) -> Row | None:
        async with self._reader.execute(sql, params) as cur:
            row: Row | None = await cur.fetchone()
            return row


async def fetch_in(db: Conn, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
    """Rows of a query inside the caller's write transaction."""
    async with db.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def count_in(db: Conn, sql: str, params: tuple[Any, ...] = ()) -> int:
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _migrate(db: Conn) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    scripts = migrations()
    if current > len(scripts):
        raise RuntimeError(
            f"the database is at schema version {current}, newer than this program knows"
            f" ({len(scripts)}): upgrade the program"
        )
    for version, sql in scripts[current:]:
        # executescript commits on its own; the version bump is inside the same script so a
        # crash leaves either the old or the new schema, never a half.
        try:
            await db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise


def backup_database(source: Path, dest: Path) -> int:
    """A consistent copy of a live database with SQLite's online backup API (never a file
    copy, which can catch a write half done); returns the number of cases in the copy."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        return int(dst.execute("SELECT count(*) FROM cases").fetchone()[0])
    finally:
        dst.close()
        src.close()


def check_database(path: Path) -> int:
    """Raise unless the file is an intact hotline database; returns its case count."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            raise RuntimeError(f"{path} is damaged: {verdict}")
        return int(db.execute("SELECT count(*) FROM cases").fetchone()[0])
    except sqlite3.Error as exc:
        raise RuntimeError(f"{path}: {exc}") from exc
    finally:
        db.close()
