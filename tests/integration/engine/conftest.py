"""Fixtures for engine tests: a pool on the test's own database, a registry, helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    """An asyncpg pool (jobd codecs) on this test's fresh database."""
    p = await create_pool(database_url, min_size=1, max_size=12)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def registry() -> WorkerRegistry:
    return WorkerRegistry()


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    interval_s: float = 0.02,
) -> None:
    """Poll `check` (sync or async) until it is true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


async def job_states(pool: Any, schema: str = "jobd") -> dict[int, str]:
    """Every job's state by id."""
    rows = await pool.fetch(f'SELECT id, state::text FROM "{schema}".jobs ORDER BY id')
    return {row[0]: row[1] for row in rows}
