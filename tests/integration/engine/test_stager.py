"""Stager: due scheduled/retryable jobs become available (bounded, notified); the
uniq-hold sweep frees expired unique keys; LeaderServices runs the stager only as leader."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg

from jobd.engine.config import EngineConfig, new_node_id
from jobd.engine.leader import Leader
from jobd.engine.services import LeaderServices
from jobd.engine.stager import MAX_BATCHES, stage_once, sweep_uniq_holds_once

CONFIG = EngineConfig()

INSERT = """
INSERT INTO jobd.jobs (state, queue, worker, scheduled_at, uniq_key, uniq_hold, completed_at)
VALUES ($1::jobd.job_state, $2, 'w', now() + make_interval(secs => $3), $4,
        coalesce($5::text, '{}')::jsonb, now() + make_interval(secs => $6))
RETURNING id
"""


async def add(
    conn: Any,
    state: str,
    *,
    queue: str = "default",
    due_in_s: float = -1.0,
    uniq_key: str | None = None,
    hold: str | None = None,
    completed_in_s: float | None = None,
) -> int:
    job_id: int = await conn.fetchval(
        INSERT, state, queue, due_in_s, uniq_key, hold, completed_in_s
    )
    return job_id


async def states(conn: Any) -> dict[int, str]:
    rows = await conn.fetch("SELECT id, state::text FROM jobd.jobs")
    return {row["id"]: row["state"] for row in rows}


async def test_stages_only_due_jobs_and_notifies_each_queue(database_url: str) -> None:
    """Due scheduled and retryable jobs become available; future ones and other states stay;
    each affected queue gets one notification on jobd_insert."""
    conn = await asyncpg.connect(database_url)
    listener = await asyncpg.connect(database_url)
    heard: list[str] = []
    await listener.add_listener("jobd_insert", lambda *args: heard.append(args[3]))
    try:
        due_a = await add(conn, "scheduled", queue="a")
        due_b = await add(conn, "retryable", queue="b")
        due_b2 = await add(conn, "scheduled", queue="b")
        future = await add(conn, "scheduled", due_in_s=60)
        executing = await add(conn, "executing")
        now: datetime = await conn.fetchval("SELECT now()")
        assert await stage_once(conn, CONFIG, now) == 3
        got = await states(conn)
        assert {got[due_a], got[due_b], got[due_b2]} == {"available"}
        assert got[future] == "scheduled" and got[executing] == "executing"
        for _ in range(100):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(heard) == ["a", "b"]
        assert await stage_once(conn, CONFIG, now) == 0
    finally:
        await listener.close()
        await conn.close()


async def test_staging_is_bounded_per_run(database_url: str) -> None:
    """One run stages at most MAX_BATCHES batches; the next run continues."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO jobd.jobs (state, worker, scheduled_at) "
            "SELECT 'scheduled', 'w', now() - interval '1 s' FROM generate_series(1, $1)",
            MAX_BATCHES + 5,
        )
        now = await conn.fetchval("SELECT now()")
        assert await stage_once(conn, CONFIG, now, batch=1) == MAX_BATCHES
        assert await stage_once(conn, CONFIG, now, batch=1) == 5
    finally:
        await conn.close()


async def test_uniq_hold_sweep_clears_only_expired_holds(database_url: str) -> None:
    """A terminal job's unique key is cleared once the hold for its state has passed; holds
    still running, held-while-retained (null) and incomplete jobs keep their keys."""
    conn = await asyncpg.connect(database_url)
    try:
        expired = await add(
            conn, "completed", uniq_key="k1", hold='{"completed": 10}', completed_in_s=-20
        )
        running = await add(
            conn, "completed", uniq_key="k2", hold='{"completed": 100}', completed_in_s=-20
        )
        retained = await add(
            conn, "completed", uniq_key="k3", hold='{"completed": null}', completed_in_s=-20
        )
        pending = await add(conn, "available", uniq_key="k4")
        now = await conn.fetchval("SELECT now()")
        assert await sweep_uniq_holds_once(conn, CONFIG, now) == 1
        keys = dict(await conn.fetch("SELECT id, uniq_key FROM jobd.jobs"))
        assert keys[expired] is None
        assert (keys[running], keys[retained], keys[pending]) == ("k2", "k3", "k4")
    finally:
        await conn.close()


async def test_services_stage_while_leader_and_stop_after_release(database_url: str) -> None:
    """LeaderServices stages due jobs by itself while its node leads, and stops acting once
    the node released the lease."""
    config = EngineConfig(lease_s=2.0, stage_interval_s=0.05)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    leader = Leader(pool, config, new_node_id("s"))
    services = LeaderServices(pool, config, leader)
    stop, stop_leader = asyncio.Event(), asyncio.Event()
    leading = asyncio.create_task(leader.run(stop_leader))
    tasks = [leading, asyncio.create_task(services.run(stop))]
    try:
        async with pool.acquire() as conn:
            job = await add(conn, "scheduled", due_in_s=0.2)
            for _ in range(300):
                if (await states(conn))[job] == "available":
                    break
                await asyncio.sleep(0.01)
            assert (await states(conn))[job] == "available"
            stop_leader.set()  # no re-election after the release below
            await leading
            await leader.release()
            await asyncio.sleep(0.05)  # services notice and end their term
            runs = dict(services.runs)
            later = await add(conn, "scheduled", due_in_s=-1)
            await asyncio.sleep(0.3)
            assert services.runs == runs
            assert (await states(conn))[later] == "scheduled"
    finally:
        stop.set()
        stop_leader.set()
        await asyncio.gather(*tasks)
        await pool.close()
