"""The shape DESIGN.md asks for, checked: SQL only in the store layer, Redis key names only in
queue/keys.py, no work at import time. (Import arrows are import-linter's job: scripts/check.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import hotline

PACKAGE = Path(hotline.__file__).parent
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I)
DRIVERS = re.compile(r"^\s*(import|from)\s+(aiosqlite|sqlite3|asyncpg)\b", re.M)


def sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text("utf-8") for p in PACKAGE.rglob("*.py")}


def test_sql_lives_only_in_the_store_layer() -> None:
    found = [
        name
        for name, text in sources().items()
        # bench/ makes and drops its throwaway databases itself (CREATE DATABASE).
        if not name.startswith(("service/store/", "bench/"))
        and (SQL.search(text) or DRIVERS.search(text))
    ]
    assert found == [], f"SQL or a database driver outside service/store/: {found}"


def test_redis_key_names_live_in_queue_keys() -> None:
    found = [
        name
        for name, text in sources().items()
        if name != "queue/keys.py" and re.search(r"""["']hotline:[a-z]""", text)
    ]
    assert found == [], f"Redis key names outside queue/keys.py: {found}"


def test_importing_the_package_does_no_work() -> None:
    """Importing every module hashes no password, opens nothing, takes well under a second
    of CPU beyond the imports themselves (argon2 at import time used to cost ~50 ms)."""
    script = (
        "import time, pkgutil, importlib, hotline\n"
        "import argon2\n"
        "calls = []\n"
        "real = argon2.PasswordHasher.hash\n"
        "def spy(self, *a, **k):\n"
        "    calls.append(a)\n"
        "    return real(self, *a, **k)\n"
        "argon2.PasswordHasher.hash = spy\n"
        "for m in pkgutil.walk_packages(hotline.__path__, 'hotline.'):\n"
        "    if m.name != 'hotline.__main__': importlib.import_module(m.name)\n"
        "print(len(calls))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "0", "a module hashes a password when imported"
