"""An idle engine waits: no fetch without a notification, a freed slot after a full
fetch, or a poll that is due (issue 13: a fetch that found nothing used to wake the loop
into the next one, thousands of statements a second per queue)."""

from __future__ import annotations

import asyncio
from typing import Any

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.producer import SAFETY_POLL_S
from jobd.engine.registry import WorkerRegistry
from tests.integration.engine.conftest import eventually, job_states


async def test_an_idle_engine_does_not_fetch_until_told(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves ten idle queues at the default poll interval run at most a few fetches each
    over 3 s (one at start, one when the notifier connects), while notifications are
    heard the poll is the safety net of SAFETY_POLL_S; an insert elsewhere (a plain
    connection, so only its notification tells) still runs at once, and the queue then
    goes quiet again."""
    ran: list[int] = []

    async def work(job: Job, ctx: JobContext) -> None:
        ran.append(job.id)

    registry.register("w", work)
    queues = tuple(QueueConfig(f"q{i}", limit=5) for i in range(10))
    engine = Engine(pool, EngineConfig(queues=queues), registry)
    await engine.start()
    try:
        await asyncio.wait_for(engine.notifier.connected.wait(), 10)
        await asyncio.sleep(3.0)  # deliberately idle
        fetches = {name: p.fetches for name, p in engine.producers.items()}
        assert max(fetches.values()) <= 3, fetches
        assert all(p.poll_every_s() == SAFETY_POLL_S for p in engine.producers.values())
        async with pool.acquire() as conn:
            (job_id,) = await insert_jobs(conn, [JobSpec("w", {}, queue="q3")])
        await eventually(lambda: ran == [job_id], timeout_s=5)
        await eventually(lambda: engine.acker.backlog == 0)
        before = engine.producers["q3"].fetches
        await asyncio.sleep(1.0)
        assert engine.producers["q3"].fetches - before <= 1
    finally:
        await engine.stop(grace_s=1)
    assert (await job_states(pool))[job_id] == "completed"
