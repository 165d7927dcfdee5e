"""Fault tests drive real processes on the embedded default (SQLite); the multi-node test
(`tests/multinode/`) drives them on PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture
def engine() -> str:
    return "sqlite"
