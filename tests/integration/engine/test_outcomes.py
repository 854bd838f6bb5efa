"""Every outcome of an attempt, through `drain` (the producers' code path): complete,
retry with backoff, discard after max_attempts, cancel, snooze, timeout, unknown worker,
the fence, and the backoff formulas."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from jobd.engine import backoff
from jobd.engine.context import JobContext
from jobd.engine.drain import drain
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import ClaimLost, Job, JobSpec
from jobd.engine.registry import WorkerRegistry
from jobd.outcomes import Cancel, Discard, Snooze


async def _insert(pool: Any, *specs: JobSpec) -> list[int]:
    async with pool.acquire() as conn:
        return await insert_jobs(conn, specs)


async def _row(pool: Any, job_id: int) -> Any:
    return await pool.fetchrow("SELECT * FROM jobd.jobs WHERE id = $1", job_id)


async def test_available_to_executing_to_completed(pool: Any, registry: WorkerRegistry) -> None:
    """Proves a job runs once with its args, is claimed (attempt 1, attempted_by set) and
    ends completed with completed_at, and a unique key without hold is released."""
    seen: list[tuple[dict[str, Any], int, str | None]] = []

    async def work(job: Job, ctx: JobContext) -> None:
        row = await ctx.pool.fetchrow("SELECT state::text, attempted_by FROM jobd.jobs")
        seen.append((job.args, job.attempt, row["state"]))
        assert row["attempted_by"] == ctx.node_id == job.attempted_by

    registry.register("w", work)
    (job_id,) = await _insert(pool, JobSpec("w", {"a": 1}, uniq_key="u1"))
    assert await drain(pool, registry) == {
        "completed": 1,
        "retried": 0,
        "discarded": 0,
        "cancelled": 0,
        "snoozed": 0,
    }
    assert seen == [({"a": 1}, 1, "executing")]
    row = await _row(pool, job_id)
    assert row["state"] == "completed" and row["completed_at"] is not None
    assert row["attempt"] == 1 and row["uniq_key"] is None and row["errors"] == []


async def test_failure_retries_with_backoff_then_succeeds(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves a raising worker makes the job retryable (scheduled by its backoff, error kept
    with attempt, time and traceback), staging brings it back, and the next attempt runs."""
    calls: list[int] = []

    async def flaky(job: Job, ctx: JobContext) -> None:
        calls.append(job.attempt)
        if job.attempt < 3:
            raise ValueError(f"boom {job.attempt}")

    registry.register("flaky", flaky, backoff=backoff.fixed(0))
    (job_id,) = await _insert(pool, JobSpec("flaky", max_attempts=5, uniq_key="keep"))
    counts = await drain(pool, registry)
    assert counts["retried"] == 2 and counts["completed"] == 1
    assert calls == [1, 2, 3]
    row = await _row(pool, job_id)
    assert row["state"] == "completed" and row["attempt"] == 3
    assert [e["attempt"] for e in row["errors"]] == [1, 2]
    first = row["errors"][0]
    assert first["kind"] == "error" and "ValueError: boom 1" in first["error"]
    assert "Traceback" in first["error"] and first["at"]


async def test_retry_is_scheduled_by_the_backoff(pool: Any, registry: WorkerRegistry) -> None:
    """Proves a failed attempt leaves the job `retryable` with scheduled_at = now + backoff
    and keeps its unique key (retryable still blocks)."""

    async def fail(job: Job, ctx: JobContext) -> None:
        raise RuntimeError("no")

    registry.register("fail", fail, backoff=backoff.fixed(600))
    (job_id,) = await _insert(pool, JobSpec("fail", max_attempts=3, uniq_key="k"))
    assert (await drain(pool, registry))["retried"] == 1
    row = await _row(pool, job_id)
    delay = (row["scheduled_at"] - row["attempted_at"]).total_seconds()
    assert row["state"] == "retryable" and 599 < delay < 602
    assert row["uniq_key"] == "k"


async def test_discarded_after_max_attempts(pool: Any, registry: WorkerRegistry) -> None:
    """Proves the last failed attempt discards the job (discarded_at set, one error per
    attempt, unique key released)."""

    async def fail(job: Job, ctx: JobContext) -> None:
        raise RuntimeError("always")

    registry.register("fail", fail, backoff=lambda attempt: 0)
    (job_id,) = await _insert(pool, JobSpec("fail", max_attempts=2, uniq_key="d"))
    counts = await drain(pool, registry)
    assert counts["retried"] == 1 and counts["discarded"] == 1
    row = await _row(pool, job_id)
    assert row["state"] == "discarded" and row["discarded_at"] is not None
    assert len(row["errors"]) == 2 and row["uniq_key"] is None


async def test_a_database_outage_does_not_use_up_an_attempt(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves a worker failing on a database outage (the server restarting under it) is
    snoozed, not failed, however often it happened before: its only attempt is kept for a
    re-run, later each time. A conflict (deadlock) is snoozed the same way at most
    TRANSIENT_RETRIES times in a job's life, then fails as usual, and a worker's own
    network error (a plain OSError) is an ordinary failure."""
    import asyncpg

    from jobd.engine.producer import TRANSIENT_RETRIES

    async def restart(job: Job, ctx: JobContext) -> None:
        raise asyncpg.AdminShutdownError("terminating connection due to administrator command")

    async def deadlock(job: Job, ctx: JobContext) -> None:
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    async def network(job: Job, ctx: JobContext) -> None:
        raise ConnectionRefusedError("the partner's API is down")

    registry.register("restart", restart)
    registry.register("deadlock", deadlock)
    registry.register("network", network)
    outage, long_outage, worn, own = await _insert(
        pool,
        JobSpec("restart", max_attempts=1),
        JobSpec("restart", max_attempts=1),
        JobSpec("deadlock", max_attempts=1),
        JobSpec("network", max_attempts=1),
    )
    await pool.execute(
        "UPDATE jobd.jobs SET meta = jsonb_build_object('snoozed', $2::int)"
        " WHERE id = ANY($1::bigint[])",
        [long_outage, worn],
        TRANSIENT_RETRIES,
    )
    counts = await drain(pool, registry)
    assert counts["snoozed"] == 2 and counts["discarded"] == 2
    row = await _row(pool, outage)
    assert row["state"] == "scheduled" and row["max_attempts"] == 2
    assert row["meta"]["snoozed"] == 1 and row["errors"] == []
    again = await _row(pool, long_outage)
    assert again["state"] == "scheduled" and again["meta"]["snoozed"] == TRANSIENT_RETRIES + 1
    assert again["scheduled_at"] - row["scheduled_at"] > timedelta(seconds=30)  # backs off
    assert (await _row(pool, worn))["state"] == "discarded"
    assert (await _row(pool, own))["state"] == "discarded"


async def test_cancel_discard_and_unknown_worker(pool: Any, registry: WorkerRegistry) -> None:
    """Proves Cancel ends the job cancelled with its reason, Discard ends it discarded at
    once despite attempts left, and the job of a worker this node does not know is not
    claimed: it waits, available and untouched, for a node that knows its worker."""

    async def cancel(job: Job, ctx: JobContext) -> None:
        raise Cancel("not needed")

    async def discard(job: Job, ctx: JobContext) -> None:
        raise Discard("bad input")

    registry.register("cancel", cancel)
    registry.register("discard", discard)
    c, d, u = await _insert(
        pool, JobSpec("cancel"), JobSpec("discard", max_attempts=9), JobSpec("nobody")
    )
    counts = await drain(pool, registry)
    assert counts["cancelled"] == 1 and counts["discarded"] == 1
    crow, drow, urow = [await _row(pool, i) for i in (c, d, u)]
    assert crow["state"] == "cancelled" and crow["cancelled_at"] is not None
    assert crow["errors"][0]["error"] == "not needed"
    assert drow["state"] == "discarded" and drow["attempt"] == 1
    assert urow["state"] == "available" and urow["attempt"] == 0 and urow["errors"] == []


async def test_snooze_does_not_use_up_an_attempt(pool: Any, registry: WorkerRegistry) -> None:
    """Proves Snooze schedules the job after the given seconds, grows max_attempts by one
    (so the attempt is not used up), counts meta.snoozed, and the job runs again."""
    attempts: list[int] = []

    async def snoozy(job: Job, ctx: JobContext) -> None:
        attempts.append(job.attempt)
        if len(attempts) < 3:
            raise Snooze(0)

    registry.register("snoozy", snoozy)
    (job_id,) = await _insert(pool, JobSpec("snoozy", max_attempts=1))
    counts = await drain(pool, registry)
    assert counts["snoozed"] == 2 and counts["completed"] == 1
    row = await _row(pool, job_id)
    assert row["state"] == "completed" and row["max_attempts"] == 3
    assert row["meta"]["snoozed"] == 2 and row["errors"] == []

    async def long_snooze(job: Job, ctx: JobContext) -> None:
        raise Snooze(120)

    registry.register("long", long_snooze)
    (later,) = await _insert(pool, JobSpec("long"))
    await drain(pool, registry)
    row = await _row(pool, later)
    assert row["state"] == "scheduled"
    assert 119 < (row["scheduled_at"] - row["attempted_at"]).total_seconds() < 122


async def test_timeout_is_a_failure_and_retried(pool: Any, registry: WorkerRegistry) -> None:
    """Proves an attempt past its worker's timeout is cancelled, recorded as a `timeout`
    error and retried; the next (fast) attempt completes."""

    async def slow_once(job: Job, ctx: JobContext) -> None:
        if job.attempt == 1:
            await asyncio.sleep(30)

    registry.register("slow", slow_once, timeout_s=0.2, backoff=backoff.fixed(0))
    (job_id,) = await _insert(pool, JobSpec("slow", max_attempts=3))
    counts = await drain(pool, registry, timeout_s=10)
    assert counts["retried"] == 1 and counts["completed"] == 1
    row = await _row(pool, job_id)
    assert row["errors"][0]["kind"] == "timeout" and "0.2" in row["errors"][0]["error"]


async def test_fence_ignores_an_ack_from_a_lost_claim(pool: Any, registry: WorkerRegistry) -> None:
    """Proves that when a job's claim changes mid-run (rescued and claimed by another node:
    simulated by rewriting attempted_by and attempt), the old attempt's completion and its
    failure are both ignored and do not overwrite the row."""
    started, release = asyncio.Event(), asyncio.Event()

    async def hijacked(job: Job, ctx: JobContext) -> None:
        started.set()
        await release.wait()
        if job.args.get("fail"):
            raise RuntimeError("late failure")

    registry.register("h", hijacked, backoff=backoff.fixed(0))
    for fail in (False, True):
        started.clear()
        release.clear()
        (job_id,) = await _insert(pool, JobSpec("h", {"fail": fail}, max_attempts=5))
        run = asyncio.create_task(drain(pool, registry, timeout_s=10))
        await asyncio.wait_for(started.wait(), 5)
        await pool.execute(
            "UPDATE jobd.jobs SET attempted_by = 'other-node', attempt = 2 WHERE id = $1", job_id
        )
        release.set()
        await run
        row = await _row(pool, job_id)
        assert row["state"] == "executing" and row["attempted_by"] == "other-node"
        assert row["attempt"] == 2 and row["errors"] == [] and row["completed_at"] is None


async def test_complete_in_commits_with_the_workers_transaction(
    pool: Any, registry: WorkerRegistry
) -> None:
    """Proves `complete_in` completes the job inside the worker's transaction (the engine
    does not ack twice), and raises ClaimLost (rolling the worker's transaction back) when
    the claim was lost."""
    outcomes: list[bool] = []

    async def own_tx(job: Job, ctx: JobContext) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if job.args.get("steal"):
                await conn.execute("UPDATE jobd.jobs SET attempt = 7, max_attempts = 9")
            await conn.execute("CREATE TABLE IF NOT EXISTS side (id int)")
            try:
                await ctx.complete_in(conn)
            except ClaimLost:
                outcomes.append(False)
                raise
            outcomes.append(True)

    registry.register("tx", own_tx)
    (job_id,) = await _insert(pool, JobSpec("tx"))
    await drain(pool, registry)
    assert outcomes == [True]
    assert (await _row(pool, job_id))["state"] == "completed"
    await pool.execute("DELETE FROM jobd.jobs")
    (stolen,) = await _insert(pool, JobSpec("tx", {"steal": True}))
    await drain(pool, registry)
    assert outcomes == [True, False]
    assert (await _row(pool, stolen))["state"] == "executing"


def test_oban_default_backoff_formula() -> None:
    """Proves the default backoff is Oban's: 15 + 2^attempt seconds plus up to 10% upward
    jitter, with attempts clamped proportionally onto 20 when max_attempts > 20."""
    for attempt in (1, 5, 10):
        base = 15 + 2**attempt
        values = {backoff.oban_default(attempt, 20) for _ in range(50)}
        assert all(base <= v <= base * 1.1 for v in values)
    base = 15 + 2**10  # attempt 50 of 100 clamps to 10
    assert base <= backoff.oban_default(50, 100) <= base * 1.1


def test_fixed_and_exponential_backoff() -> None:
    """Proves `fixed` is constant and `exponential` doubles from min, caps at max and stays
    within its jitter band."""
    assert [backoff.fixed(30)(a) for a in (1, 2, 9)] == [30, 30, 30]
    exact = backoff.exponential(min_s=1, max_s=60, jitter=0)
    assert [exact(a) for a in (1, 2, 3, 4, 7, 20)] == [1, 2, 4, 8, 60, 60]
    jittery = backoff.exponential(min_s=10, max_s=1000, jitter=0.1)
    assert all(18 <= jittery(2) <= 22 for _ in range(50))
