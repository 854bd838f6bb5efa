"""Producers inside a running Engine: jobs run, limits hold, global limits hold across
engines, and a notification wakes a producer long before its poll interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.registry import WorkerRegistry
from tests.integration.engine.conftest import eventually, job_states


def _config(*queues: QueueConfig, poll_interval_s: float = 0.2) -> EngineConfig:
    return EngineConfig(queues=queues, poll_interval_s=poll_interval_s, shutdown_grace_s=5)


class Concurrency:
    """Counts jobs running at once (max over the run)."""

    def __init__(self) -> None:
        self.now = 0
        self.max = 0
        self.done = 0

    async def work(self, job: Job, ctx: JobContext) -> None:
        self.now += 1
        self.max = max(self.max, self.now)
        try:
            await asyncio.sleep(job.args.get("sleep_s", 0.02))
        finally:
            self.now -= 1
            self.done += 1


async def test_engine_runs_inserted_jobs_within_the_queue_limit(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves an engine completes every job of its queues and never runs more than the
    queue's limit at once on the node."""
    c = Concurrency()
    registry.register("c", c.work)
    config = _config(QueueConfig("default", limit=4), QueueConfig("other", limit=2))
    async with Engine(pool, config, registry) as engine:
        await engine.insert([JobSpec("c") for _ in range(30)])
        await engine.insert([JobSpec("c", queue="other") for _ in range(10)])
        await eventually(lambda: c.done == 40)
        await engine.acker.wait_idle()
    states = await job_states(pool)
    assert set(states.values()) == {"completed"} and len(states) == 40
    assert c.max <= 6


async def test_global_limit_holds_across_two_engines(pool: Any, registry: WorkerRegistry) -> None:
    """Proves global_limit=3 caps concurrent jobs of a queue across two engines whose local
    limits (5 each) would allow 10."""
    c = Concurrency()
    registry.register("c", c.work)
    config = _config(QueueConfig("g", limit=5, global_limit=3), poll_interval_s=0.05)
    async with Engine(pool, config, registry), Engine(pool, config, registry):
        async with pool.acquire() as conn:
            await insert_jobs(conn, [JobSpec("c", {"sleep_s": 0.05}, queue="g")] * 40)
        await eventually(lambda: c.done == 40, timeout_s=15)
    assert 1 <= c.max <= 3


async def test_notification_wakes_producer_before_poll(pool: Any, registry: WorkerRegistry) -> None:
    """Proves a job inserted by another connection starts within a fraction of a second
    although the poll interval is 30 s: the insert's notification woke the producer."""
    started = asyncio.Event()

    async def work(job: Job, ctx: JobContext) -> None:
        started.set()

    registry.register("w", work)
    engine = Engine(pool, _config(QueueConfig("default"), poll_interval_s=30), registry)
    async with engine:
        await asyncio.wait_for(engine.notifier.connected.wait(), 5)
        await asyncio.sleep(0.1)  # let the first (empty) fetch finish: it must not find it
        t0 = time.monotonic()
        async with pool.acquire() as conn:
            await insert_jobs(conn, [JobSpec("w")])
        await asyncio.wait_for(started.wait(), 5)
        elapsed_s = time.monotonic() - t0
    assert elapsed_s < 1.0


async def test_fetch_claims_by_priority_then_schedule(pool: Any, registry: WorkerRegistry) -> None:
    """Proves jobs are claimed in priority order (0 first), then by schedule and id."""
    order: list[int] = []

    async def work(job: Job, ctx: JobContext) -> None:
        order.append(job.args["n"])

    registry.register("w", work)
    async with pool.acquire() as conn:
        await insert_jobs(
            conn, [JobSpec("w", {"n": n}, priority=p) for n, p in [(1, 5), (2, 0), (3, 9), (4, 0)]]
        )
    async with Engine(pool, _config(QueueConfig("default", limit=1)), registry):
        await eventually(lambda: len(order) == 4)
    assert order == [2, 4, 1, 3]


async def test_fence_holds_on_the_producers_batched_ack(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves the producer's batched completion (carried by its next fetch statement) is
    fenced: a job whose claim changed mid-run (attempted_by/attempt rewritten, as after a
    rescue and re-claim) is not completed, while its batch mates are."""
    release = asyncio.Event()
    running: set[int] = set()

    async def work(job: Job, ctx: JobContext) -> None:
        running.add(job.id)
        await release.wait()

    registry.register("w", work)
    async with Engine(pool, _config(QueueConfig("default", limit=5)), registry) as engine:
        ids = await engine.insert([JobSpec("w") for _ in range(3)])
        await eventually(lambda: len(running) == 3)
        await pool.execute(
            "UPDATE jobd.jobs SET attempted_by = 'other-node', attempt = 2 WHERE id = $1", ids[0]
        )
        release.set()
        await eventually(lambda: engine.running == 0)
        await engine.insert([JobSpec("w")])  # a fetch that carries the completions
        await eventually(lambda: len(running) == 4)
        await engine.acker.wait_idle()
        states = await job_states(pool)
    assert states[ids[0]] == "executing"
    assert states[ids[1]] == states[ids[2]] == "completed"


async def test_acker_and_producer_never_share_or_drop_a_completion(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Regression: the acker's flush and a producer's ack-carrying fetch both take
    completions from one queue. Each completion must be written exactly once: none
    reported lost (a double write), none dropped (a job left executing forever)."""
    from structlog.testing import capture_logs

    c = Concurrency()
    registry.register("c", c.work)
    with capture_logs() as logs:  # the engine binds its loggers when it is built
        async with Engine(pool, _config(QueueConfig("default", limit=20)), registry) as engine:
            await engine.insert([JobSpec("c", args={"sleep_s": 0.001}) for _ in range(2000)])
            await eventually(lambda: c.done == 2000, timeout_s=60)
            await engine.acker.wait_idle()
    states = await job_states(pool)
    assert list(states.values()).count("completed") == 2000
    assert [e for e in logs if e["event"] == "job.ack_lost"] == []


async def test_claims_whose_reply_was_lost_are_released(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Regression (found by the Postgres-restart fault test): a fetch whose connection
    dies after its claim committed leaves jobs `executing` for this live node that no task
    runs, and the lifeline never rescues a live node's jobs. After such a failure the
    producer returns every claim it does not know of, and they run."""
    c = Concurrency()
    registry.register("c", c.work)
    async with Engine(pool, _config(QueueConfig("default", limit=5)), registry) as engine:
        producer = engine.producers["default"]
        producer.stop_fetching()  # nothing else claims while we stage the lost reply
        await eventually(lambda: not producer._fetching)
        ids = await insert_jobs(pool, [JobSpec("c") for _ in range(3)])
        await pool.execute(  # what a claim whose reply was lost leaves behind
            "UPDATE jobd.jobs SET state = 'executing', attempt = 1, attempted_by = $1",
            engine.node_id,
        )
        producer._stopping = False
        producer._unsure = True  # as after a fetch failed on a lost connection
        engine._spawn("producer:again", producer.run())
        await eventually(lambda: c.done == 3)
        await engine.acker.wait_idle()
    rows = await pool.fetch("SELECT id, state::text, attempt FROM jobd.jobs ORDER BY id")
    assert [(r["id"], r["state"], r["attempt"]) for r in rows] == [(i, "completed", 1) for i in ids]
