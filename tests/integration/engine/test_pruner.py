"""Pruner: each terminal state keeps its own retention; deletes are batched and bounded."""

from __future__ import annotations

from typing import Any

from jobd.engine.config import EngineConfig
from jobd.engine.pruner import prune_once

STAMP = {"completed": "completed_at", "cancelled": "cancelled_at", "discarded": "discarded_at"}


async def add(pool: Any, state: str, age_s: float = 0.0, count: int = 1) -> list[int]:
    """Insert `count` jobs in `state`; terminal ones finished `age_s` ago."""
    column = STAMP.get(state, "attempted_at")
    rows = await pool.fetch(
        f"INSERT INTO jobd.jobs (state, worker, {column}) "
        "SELECT $1::jobd.job_state, 'w', now() - make_interval(secs => $2) "
        "FROM generate_series(1, $3) RETURNING id",
        state,
        age_s,
        count,
    )
    return [row[0] for row in rows]


async def remaining(pool: Any) -> set[int]:
    return {row[0] for row in await pool.fetch("SELECT id FROM jobd.jobs")}


async def test_each_state_keeps_its_retention(pool: Any) -> None:
    """Completed and cancelled jobs older than their retention are deleted, younger ones and
    states without retention (here discarded: kept forever) stay, incomplete jobs stay."""
    config = EngineConfig(
        retention_s={"completed": 10.0, "cancelled": 100.0, "discarded": float("inf")}
    )
    old_completed = await add(pool, "completed", 20)
    young_completed = await add(pool, "completed", 5)
    mid_cancelled = await add(pool, "cancelled", 50)
    old_cancelled = await add(pool, "cancelled", 200)
    ancient_discarded = await add(pool, "discarded", 10_000_000)
    pending = await add(pool, "available")
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        assert await prune_once(conn, config, now) == 2
    left = await remaining(pool)
    assert left == set(young_completed + mid_cancelled + ancient_discarded + pending)
    assert not left & set(old_completed + old_cancelled)


async def test_deletes_in_bounded_batches(pool: Any) -> None:
    """One run deletes at most max_batches * prune_batch rows per state; the next run
    continues until a batch comes back short."""
    config = EngineConfig(prune_batch=3, retention_s={"completed": 1.0})
    await add(pool, "completed", 60, count=10)
    now = await pool.fetchval("SELECT now()")
    async with pool.acquire() as conn:
        assert await prune_once(conn, config, now, max_batches=2) == 6
        assert await prune_once(conn, config, now, max_batches=2) == 4
    assert await remaining(pool) == set()
