"""Engine lifecycle: graceful stop (SPEC section 2), supervision of background tasks,
and surviving lost connections."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine, EngineFailed
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.registry import WorkerRegistry
from tests.integration.engine.conftest import eventually, job_states


def _config(**kw: Any) -> EngineConfig:
    return EngineConfig(queues=(QueueConfig("default", limit=5),), poll_interval_s=0.1, **kw)


async def test_graceful_stop_finishes_quick_jobs_and_returns_the_rest(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves stop() lets jobs that end within the grace period complete, cancels the ones
    that do not and returns them to `available` with the attempt not counted, then
    releases leadership and unregisters the node."""
    running = 0

    async def work(job: Job, ctx: JobContext) -> None:
        nonlocal running
        running += 1
        await asyncio.sleep(job.args["sleep_s"])

    registry.register("w", work)
    engine = Engine(pool, _config(), registry)
    await engine.start()
    ids = await engine.insert(
        [JobSpec("w", {"sleep_s": 0.1}), JobSpec("w", {"sleep_s": 60}, uniq_key="long")]
    )
    await eventually(lambda: running == 2)
    await engine.stop(grace_s=0.5)
    states = await job_states(pool)
    assert states == {ids[0]: "completed", ids[1]: "available"}
    row = await pool.fetchrow("SELECT * FROM jobd.jobs WHERE id = $1", ids[1])
    assert row["attempt"] == 0 and row["attempted_by"] is None and row["uniq_key"] == "long"
    nodes = await pool.fetchval("SELECT count(*) FROM jobd.nodes WHERE id = $1", engine.node_id)
    leaders = await pool.fetchval(
        "SELECT count(*) FROM jobd.leader WHERE node_id = $1 AND expires_at > now()",
        engine.node_id,
    )
    assert nodes == 0 and leaders == 0


async def test_stop_is_idempotent_and_start_twice_fails(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves a second stop() is harmless and a second start() is refused."""
    engine = Engine(pool, _config(), registry)
    await engine.start()
    with pytest.raises(Exception, match="already started"):
        await engine.start()
    await engine.stop()
    await engine.stop()


async def test_a_dead_background_task_stops_the_engine_loudly(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves an unexpected (non-transient) error in a producer stops the whole engine and
    `wait()` reports it, instead of the queue silently stopping."""
    engine = Engine(pool, _config(), registry)
    await engine.start()
    await pool.execute("ALTER TABLE jobd.jobs RENAME TO jobs_gone")
    try:
        with pytest.raises(EngineFailed):
            await asyncio.wait_for(engine.wait(), 10)
    finally:
        await pool.execute("ALTER TABLE jobd.jobs_gone RENAME TO jobs")
        await engine.stop()


async def test_engine_survives_its_connections_being_killed(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves that terminating every connection of the engine's database (pool and
    notifier) does not crash it: loops reconnect and later jobs still run."""
    done: list[int] = []

    async def work(job: Job, ctx: JobContext) -> None:
        done.append(job.id)

    registry.register("w", work)
    async with Engine(pool, _config(), registry) as engine:
        await engine.insert([JobSpec("w")])
        await eventually(lambda: len(done) == 1)
        killer = await pool.acquire()
        try:
            await killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await pool.release(killer)
        await eventually(lambda: engine.notifier.connects >= 2, timeout_s=10)
        await engine.insert([JobSpec("w") for _ in range(3)])
        await eventually(lambda: len(done) == 4, timeout_s=10)
        assert engine.failure is None


def test_a_full_server_is_a_transient_error() -> None:
    """Regression: "too many connections" (53300) must be retried by the engine's loops,
    not kill the producer and stop the engine (seen on a busy shared server)."""
    import asyncpg

    from jobd.sql.db import is_transient

    assert is_transient(asyncpg.TooManyConnectionsError("sorry, too many clients already"))
    assert not is_transient(asyncpg.UndefinedTableError("relation does not exist"))
