"""A throwaway PostgreSQL cluster for `hotline bench` and the tests: Debian's `postgresql`
binaries (no service of theirs), initdb in a temp dir as an unprivileged user (PostgreSQL
refuses to run as root), listening only on a Unix socket in that dir, fsync off. Never for
data anyone keeps."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import asyncpg
from sqlalchemy import make_url

USER = "hotline"


def binaries() -> Path | None:
    """The folder with initdb and pg_ctl: Debian keeps them out of PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


class PostgresCluster:
    def __init__(self, base: Path, bindir: Path, run_as: str | None) -> None:
        self.base = base
        self.bindir = bindir
        self.run_as = run_as
        self.data = base / "data"

    @classmethod
    def start(cls) -> PostgresCluster:
        bindir = binaries()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql)")
        run_as = _unprivileged_user() if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        cluster = cls(base, bindir, run_as)
        if run_as is not None:
            entry = pwd.getpwnam(run_as)
            os.chown(base, entry.pw_uid, entry.pw_gid)
        cluster._run(
            "initdb", "-D", str(cluster.data), "-U", USER, "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-k {base} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        cluster._run(
            "pg_ctl", "-D", str(cluster.data), "-o", options, "-l", str(base / "log"), "-w",
            "start",
        )  # fmt: skip
        return cluster

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.base)  # noqa: S603 - our own arguments

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@/{database}?host={quote(str(self.base))}"

    async def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        conn = await asyncpg.connect(host=str(self.base), user=USER, database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


def database_url(server: str, database: str) -> str:
    """The URL of `database` on the server `server` names."""
    return make_url(server).set(database=database).render_as_string(hide_password=False)


async def recreate(server: str, database: str, *, drop_only: bool = False) -> None:
    """Drop `database` on `server` and (unless `drop_only`) make it again, empty."""
    conn = await asyncpg.connect(database_url(server, "postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no unprivileged user to run PostgreSQL as")
