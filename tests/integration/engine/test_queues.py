"""Queue control: pause, resume and scale persist in the database, survive a restart,
and reach every node through the signal channel."""

from __future__ import annotations

import asyncio
from typing import Any

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.registry import WorkerRegistry
from tests.integration.engine.conftest import eventually


def _config(limit: int = 2) -> EngineConfig:
    return EngineConfig(queues=(QueueConfig("q", limit=limit),), poll_interval_s=0.1)


async def _count(pool: Any, state: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM jobd.jobs WHERE state = $1", state))


async def test_pause_and_scale_persist_across_restart(pool: Any, registry: WorkerRegistry) -> None:
    """Proves a paused queue stays paused after the engine restarts (nothing runs), and
    that resume and a scaled limit apply and are read back by a fresh engine."""
    done: list[int] = []

    async def work(job: Job, ctx: JobContext) -> None:
        done.append(job.id)

    registry.register("w", work)
    async with Engine(pool, _config(), registry) as engine:
        await engine.pause_queue("q")
        await engine.scale_queue("q", 7)
        assert engine.producers["q"].state.paused
    async with Engine(pool, _config(), registry) as engine:
        state = engine.producers["q"].state
        assert state.paused and state.limit == 7
        await engine.insert([JobSpec("w", queue="q") for _ in range(5)])
        await asyncio.sleep(0.4)  # several poll intervals: a paused queue fetches nothing
        assert done == [] and await _count(pool, "available") == 5
        await engine.resume_queue("q")
        await eventually(lambda: len(done) == 5)
    async with Engine(pool, _config(), registry) as engine:
        assert not engine.producers["q"].state.paused
        assert engine.producers["q"].state.limit == 7
        await engine.scale_queue("q", None)  # back to the configured limit
        assert engine.producers["q"].state.limit == 2


async def test_pause_on_one_node_reaches_another(pool: Any, registry: WorkerRegistry) -> None:
    """Proves a pause issued through one engine is seen by a second engine via the
    jobd_signal notification (not only after a restart), and so is the resume."""
    registry.register("w", lambda job, ctx: asyncio.sleep(0))
    async with Engine(pool, _config(), registry) as a, Engine(pool, _config(), registry) as b:
        await asyncio.wait_for(b.notifier.connected.wait(), 5)
        await a.pause_queue("q")
        await eventually(lambda: b.producers["q"].state.paused, timeout_s=5)
        await a.scale_queue("q", 3, global_limit=4)
        await eventually(lambda: b.producers["q"].state.limit == 3, timeout_s=5)
        assert b.producers["q"].state.global_limit == 4
        await a.resume_queue("q")
        await eventually(lambda: not b.producers["q"].state.paused, timeout_s=5)
