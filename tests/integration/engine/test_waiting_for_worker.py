"""Jobs that no live node will claim are visible: `ops.status` lists them by queue and
worker, and the `jobd_jobs_waiting_for_worker` gauge counts them (SPEC 5: jobs wait for a
node that can run them; issue 11, case 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from jobd.admin.metrics import Metrics
from jobd.engine import ops
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.engine import Engine
from jobd.engine.jobs import Job, JobSpec
from jobd.engine.registry import WorkerRegistry


def gauge(metrics: Metrics) -> dict[tuple[str, str], float]:
    families = text_string_to_metric_families(metrics.render().decode())
    return {
        (s.labels["queue"], s.labels["worker"]): s.value
        for family in families
        if family.name == "jobd_jobs_waiting_for_worker"
        for s in family.samples
    }


async def test_status_and_metric_name_the_jobs_no_node_can_claim(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves a node serving queue `q` with worker `known` leaves a job of an unknown
    worker in `q` and a `known` job in an unserved queue waiting, reports exactly those two
    (the node's own claimable work is not listed), and that with no node running every
    waiting job is listed; the gauge follows, and a pair that stops waiting drops out."""

    async def never_runs(job: Job, ctx: JobContext) -> None:
        raise AssertionError("the known job is scheduled an hour ahead: it may not run")

    registry.register("known", never_runs)
    engine = Engine(pool, EngineConfig(queues=(QueueConfig("q", limit=1),)), registry)
    await engine.start()
    later = datetime.now(UTC) + timedelta(hours=1)  # claimable by the node, just not yet
    metrics = Metrics()
    try:
        await engine.insert(
            [
                JobSpec("known", {}, queue="q", scheduled_at=later),
                JobSpec("unknown", {}, queue="q"),
                JobSpec("unknown", {}, queue="q"),
                JobSpec("known", {}, queue="elsewhere"),
            ]
        )
        async with pool.acquire() as conn:
            waiting = (await ops.status(conn, "jobd"))["waiting_for_worker"]
            await metrics.refresh(conn, "jobd")
        assert waiting == [
            {"queue": "elsewhere", "worker": "known", "jobs": 1},
            {"queue": "q", "worker": "unknown", "jobs": 2},
        ]
        assert gauge(metrics) == {("elsewhere", "known"): 1.0, ("q", "unknown"): 2.0}
    finally:
        await engine.stop(grace_s=0.5)
    await pool.execute("DELETE FROM jobd.jobs WHERE queue = 'elsewhere'")
    async with pool.acquire() as conn:
        waiting = (await ops.status(conn, "jobd"))["waiting_for_worker"]
        await metrics.refresh(conn, "jobd")
    assert waiting == [
        {"queue": "q", "worker": "known", "jobs": 1},
        {"queue": "q", "worker": "unknown", "jobs": 2},
    ]
    assert gauge(metrics) == {("q", "known"): 1.0, ("q", "unknown"): 2.0}
