"""Lifeline: jobs of nodes that stopped heartbeating are rescued without using up their
attempt (a crash is not the job's failure), live nodes' jobs are left alone, dead node
rows are removed; a job rescued more than max_rescues times is a final failure."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from jobd.engine.config import EngineConfig
from jobd.engine.lifeline import lifeline_once

CONFIG = EngineConfig(heartbeat_s=1.0)  # dead after 3 s without a beat


async def add_node(pool: Any, node_id: str, beat_age_s: float) -> None:
    await pool.execute(
        "INSERT INTO jobd.nodes (id, name, heartbeat_at) "
        "VALUES ($1, $1, now() - make_interval(secs => $2))",
        node_id,
        beat_age_s,
    )


async def add_job(
    pool: Any,
    node_id: str | None,
    *,
    state: str = "executing",
    attempt: int = 1,
    max_attempts: int = 3,
    uniq_key: str | None = None,
    hold: dict[str, Any] | None = None,
) -> int:
    job_id: int = await pool.fetchval(
        "INSERT INTO jobd.jobs (state, worker, attempt, max_attempts, attempted_by, "
        "attempted_at, uniq_key, uniq_hold) "
        "VALUES ($1::jobd.job_state, 'w', $2, $3, $4, now(), $5, $6) RETURNING id",
        state,
        attempt,
        max_attempts,
        node_id,
        uniq_key,
        hold or {},
    )
    return job_id


async def job(pool: Any, job_id: int) -> Any:
    return await pool.fetchrow("SELECT *, state::text AS st FROM jobd.jobs WHERE id = $1", job_id)


async def test_rescues_dead_nodes_jobs_and_spares_live_ones(pool: Any) -> None:
    """A node whose heartbeat is older than three intervals is dead: its executing jobs go
    back to available with meta.rescued and a `rescued` error entry; jobs of a live node,
    and non-executing jobs of the dead one, are untouched; the dead node row is deleted."""
    await add_node(pool, "live", beat_age_s=2.5)  # 2.5 missed-beat seconds: still alive
    await add_node(pool, "dead", beat_age_s=10)
    rescued = await add_job(pool, "dead")
    live = await add_job(pool, "live")
    waiting = await add_job(pool, "dead", state="available", attempt=0)
    now = await pool.fetchval("SELECT now()")
    with capture_logs() as logs:
        async with pool.acquire() as conn:
            assert await lifeline_once(conn, CONFIG, now) == 1
    row = await job(pool, rescued)
    assert row["st"] == "available"
    assert row["meta"]["rescued"] == 1
    (error,) = row["errors"]
    assert error["kind"] == "rescued" and error["attempt"] == 1
    assert error["error"] == "rescued: node dead stopped heartbeating"
    assert (await job(pool, live))["st"] == "executing"
    assert (await job(pool, waiting))["st"] == "available"
    nodes = [r[0] for r in await pool.fetch("SELECT id FROM jobd.nodes ORDER BY id")]
    assert nodes == ["live"]
    events = {entry["event"]: entry for entry in logs}
    assert events["job.rescue"]["job_id"] == rescued
    assert events["job.rescue"]["node_id"] == "dead"
    assert events["node.dead"]["node_id"] == "dead"


async def test_a_crash_does_not_use_up_the_last_attempt(pool: Any) -> None:
    """A dead node's job on its last attempt (the default max_attempts: 1) goes back to
    available with its attempt not counted and its unique key kept: the next claim runs
    it as the same attempt."""
    await add_node(pool, "dead", beat_age_s=10)
    last = await add_job(pool, "dead", attempt=3, max_attempts=3, uniq_key="a")
    only = await add_job(pool, "dead", attempt=1, max_attempts=1, uniq_key="b")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        assert await lifeline_once(conn, CONFIG, now) == 2
    for job_id, key, attempt in ((last, "a", 2), (only, "b", 0)):
        row = await job(pool, job_id)
        assert row["st"] == "available" and row["discarded_at"] is None
        assert row["uniq_key"] == key and row["attempt"] == attempt
        assert row["meta"]["rescued"] == 1 and row["attempted_by"] is None


async def test_rescued_too_often_is_a_final_failure(pool: Any) -> None:
    """A job rescued more than max_rescues times is not run again: the producer that claims
    it ends it as a final failure (discarded with a `rescued` error when its worker has no
    final-failure handler; the handler runs when it has one: a trigger's on_error)."""
    from jobd.engine.context import JobContext
    from jobd.engine.drain import drain
    from jobd.engine.jobs import Job
    from jobd.engine.registry import WorkerRegistry

    ran: list[str] = []

    async def work(job: Job, ctx: JobContext) -> None:
        ran.append("work")

    async def final(job: Job, ctx: JobContext, exc: BaseException) -> None:
        ran.append(f"final: {exc}")
        async with ctx.pool.acquire() as conn:
            await ctx.complete_in(conn, {"error": str(exc), "kind": "rescued"})

    registry = WorkerRegistry()
    registry.register("w", work)
    registry.register("h", work, final_failure=final)
    plain = await add_job(pool, None, state="available", attempt=0)
    handled = await add_job(pool, None, state="available", attempt=0)
    await pool.execute("UPDATE jobd.jobs SET meta = jsonb_build_object('rescued', 4)")
    await pool.execute("UPDATE jobd.jobs SET worker = 'h' WHERE id = $1", handled)
    counts = await drain(pool, registry, max_rescues=3)
    assert counts["discarded"] == 1 and counts["completed"] == 1
    assert ran == [
        "final: the job's node died while running it 4 times (more than engine.max_rescues = 3)"
    ]
    row = await job(pool, plain)
    assert row["st"] == "discarded" and row["errors"][-1]["kind"] == "rescued"
    assert (await job(pool, handled))["st"] == "completed"


async def test_jobs_of_unknown_nodes_are_rescued_and_counted(pool: Any) -> None:
    """An executing job whose attempted_by names no node row is an orphan and is rescued;
    a second rescue increments meta.rescued again."""
    orphan = await add_job(pool, "gone")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        assert await lifeline_once(conn, CONFIG, now) == 1
        await conn.execute(
            "UPDATE jobd.jobs SET state = 'executing', attempt = 2 WHERE id = $1", orphan
        )
        assert await lifeline_once(conn, CONFIG, now) == 1
    row = await job(pool, orphan)
    assert row["meta"]["rescued"] == 2 and len(row["errors"]) == 2


async def test_rescue_is_batched(pool: Any) -> None:
    """Rescue works in bounded batches and still rescues every orphan in one run."""
    await add_node(pool, "dead", beat_age_s=10)
    for _ in range(7):
        await add_job(pool, "dead")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        assert await lifeline_once(conn, CONFIG, now, batch=3) == 7
    assert await pool.fetchval("SELECT count(*) FROM jobd.jobs WHERE state = 'available'") == 7


async def test_heartbeat_keeps_the_node_alive_and_comes_back(pool: Any) -> None:
    """Heartbeat registers the node, refreshes heartbeat_at, re-creates its row after the
    lifeline deleted it, and removes it on unregister."""
    import asyncio

    from jobd.engine.nodes import Heartbeat
    from tests.integration.engine.conftest import eventually

    config = EngineConfig(heartbeat_s=0.05)
    beat = Heartbeat(pool, config, "n1")
    await beat.register()
    first = await pool.fetchval("SELECT heartbeat_at FROM jobd.nodes WHERE id = 'n1'")
    stop = asyncio.Event()
    task = asyncio.create_task(beat.run(stop))
    try:

        async def refreshed() -> bool:
            at = await pool.fetchval("SELECT heartbeat_at FROM jobd.nodes WHERE id = 'n1'")
            return bool(at is not None and at > first)

        await eventually(refreshed, timeout_s=2)
        await pool.execute("DELETE FROM jobd.nodes WHERE id = 'n1'")
        await eventually(refreshed, timeout_s=2)
    finally:
        stop.set()
        await task
    await beat.unregister()
    assert await pool.fetchval("SELECT count(*) FROM jobd.nodes") == 0
