"""Fixtures for trigger tests: a pool on the test's fresh database and a runtime builder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jobd.config import load_config_text
from jobd.engine.drain import drain
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.triggers.runtime import TriggerRuntime
from tests.integration.triggers import actions

HEADER = """
version: 1
database: {url: "postgresql://unused"}
"""


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    """An asyncpg pool (jobd codecs) on this test's fresh database."""
    p = await create_pool(database_url, min_size=1, max_size=12)
    actions.reset()
    try:
        yield p
    finally:
        await p.close()


Build = Callable[..., Awaitable[TriggerRuntime]]


@pytest.fixture
def build(pool: Any) -> Build:
    """`await build(yaml_body, setup_sql)`: create tables, load the config, create the
    runtime on a fresh registry."""

    async def make(body: str, setup: str = "") -> TriggerRuntime:
        if setup:
            await pool.execute(setup)
        spec = load_config_text(HEADER + body, "test.yaml", env={})
        async with pool.acquire() as conn:
            return await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)

    return make


async def run_all(rt: TriggerRuntime) -> dict[str, int]:
    """Run every available job (schedulers and workers) until none is left."""
    return await drain(rt.pool, rt.registry, timeout_s=15)


async def jobs(pool: Any, worker: str | None = None) -> list[Any]:
    """The jobs (of `worker`), oldest first."""
    return await pool.fetch(
        "SELECT id, state::text AS state, worker, args, uniq_key, attempt, errors, priority,"
        " queue, max_attempts, scheduled_at FROM jobd.jobs"
        " WHERE $1::text IS NULL OR worker = $1 ORDER BY id",
        worker,
    )
