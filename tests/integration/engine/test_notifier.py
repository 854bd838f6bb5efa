"""The notifier's dedicated connection: reconnect and re-LISTEN after it is killed."""

from __future__ import annotations

import asyncio
from typing import Any

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.registry import WorkerRegistry
from tests.integration.engine.conftest import eventually


async def test_notifier_reconnects_after_its_backend_is_terminated(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves that after `pg_terminate_backend` of the listening connection, the notifier
    opens a new one, listens again, and inserts wake the producer again (poll interval
    30 s, so only a notification can explain a fast start)."""
    started = asyncio.Event()

    async def work(job: Job, ctx: JobContext) -> None:
        started.set()

    registry.register("w", work)
    config = EngineConfig(queues=(QueueConfig("default"),), poll_interval_s=30)
    async with Engine(pool, config, registry) as engine:
        notifier = engine.notifier
        await asyncio.wait_for(notifier.connected.wait(), 5)
        old_pid = notifier.server_pid
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        await eventually(lambda: notifier.connects >= 2 and notifier.connected.is_set())
        assert notifier.server_pid != old_pid
        await asyncio.sleep(0.1)  # the reconnect's wake-up fetch found nothing
        async with pool.acquire() as conn:
            await insert_jobs(conn, [JobSpec("w")])
        await asyncio.wait_for(started.wait(), 2)


async def test_notifier_listens_on_its_own_connection(pool: Any, registry: WorkerRegistry) -> None:
    """Proves the listening connection is not one of the pool's (a pooled connection is
    reset on release and would lose its LISTENs)."""
    config = EngineConfig(queues=(QueueConfig("default"),))
    async with Engine(pool, config, registry) as engine:
        await asyncio.wait_for(engine.notifier.connected.wait(), 5)
        listening = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND application_name = 'jobd'",
            engine.notifier.server_pid,
        )
        async with pool.acquire() as conn:
            assert conn.get_server_pid() != engine.notifier.server_pid
    assert listening == 1
