"""Where the drain's time goes: one jobd drain (same setup as bench/runners/jobd_run.py,
in process) with the database's own counters around it, and EXPLAIN (ANALYZE, BUFFERS)
of the hot statement. Run under py-spy for the Python side:

    .venv/bin/py-spy record -o bench/results/drain-profile.svg -- \\
        .venv/bin/python -m bench.profile_drain --n 20000

Prints one JSON object: wall seconds, this process's CPU seconds (user+sys: the Python
side), transactions and rows written per job (pg_stat_database deltas), and the plans.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import asyncpg

from bench.harness.db import fresh_database, server_url
from bench.runners.jobd_run import quiet_logs
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.engine.registry import WorkerRegistry
from jobd.sql import queries
from jobd.sql.db import create_pool
from jobd.sql.migrate import migrate

STATS = """SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,
                  tup_returned, tup_fetched, blks_hit, blks_read
             FROM pg_stat_database WHERE datname = current_database()"""


async def db_stats(url: str) -> dict[str, int]:
    """Read after the drain's pool is closed: backends flush their counters on exit."""
    await asyncio.sleep(0.5)
    conn = await asyncpg.connect(url)
    try:
        return dict(await conn.fetchrow(STATS))
    finally:
        await conn.close()


async def drain(pool: Any, n: int) -> dict[str, Any]:
    done = asyncio.Event()
    calls = 0

    async def noop(job: Any, ctx: Any) -> None:
        nonlocal calls
        calls += 1
        if calls >= n:
            done.set()

    registry = WorkerRegistry()
    registry.register("noop", noop)
    config = EngineConfig(queues=(QueueConfig("default", limit=50),), poll_interval_s=0.1)
    engine = Engine(pool, config, registry)
    cpu0, wall0 = os.times(), time.perf_counter()
    await engine.start()
    await done.wait()
    async with pool.acquire() as conn:
        while await conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE state = 'completed'") < n:
            await asyncio.sleep(0.005)
    wall, cpu1 = time.perf_counter() - wall0, os.times()
    await engine.stop()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"wall_s": round(wall, 3), "python_cpu_s": round(cpu, 3), "jobs_per_s": round(n / wall)}


async def explain(pool: Any, batch: int) -> dict[str, str]:
    """Plans of ack_and_fetch (a claim alone, then a claim with acks) on a real backlog,
    rolled back."""
    q = queries("jobd")
    plans = {}
    async with pool.acquire() as conn:
        await insert_jobs(conn, [JobSpec(worker="noop")] * 5_000, notify=False)
        await conn.execute("ANALYZE jobd.jobs")
        tr = conn.transaction()
        await tr.start()
        try:
            claim = ("default", batch, "node-x", [], [], ["noop"], None)
            rows = await conn.fetch(q["ack_and_fetch"], *claim)
            ids, attempts = [r["id"] for r in rows], [r["attempt"] for r in rows]
            for name, sql, args in (
                ("claim", q["ack_and_fetch"], claim),
                (
                    "ack_and_fetch",
                    q["ack_and_fetch"],
                    ("default", batch, "node-x", ids, attempts, ["noop"], None),
                ),
            ):
                text = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
                plans[name] = "\n".join(r[0] for r in text)
        finally:
            await tr.rollback()
    return plans


async def main(n: int) -> None:
    quiet_logs()
    async with fresh_database(server_url(), prefix="bench_prof") as url:
        pool = await create_pool(url, min_size=2, max_size=10)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, "jobd")
                for start in range(0, n, 5_000):
                    await insert_jobs(conn, [JobSpec(worker="noop")] * min(5_000, n - start))
                await conn.execute("ANALYZE")
        finally:
            await pool.close()
        before = await db_stats(url)
        pool = await create_pool(url, min_size=2, max_size=10)
        try:
            timing = await drain(pool, n)
        finally:
            await pool.close()
        after = await db_stats(url)
        delta = {k: after[k] - before[k] for k in before}
        per_job = {k: round(v / n, 3) for k, v in delta.items()}
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            plans = await explain(pool, 50)
        finally:
            await pool.close()
    print(
        json.dumps(
            {"n": n, **timing, "db_delta": delta, "db_per_job": per_job, "plans": plans}, indent=1
        )
    )


if __name__ == "__main__":
    import uvloop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    uvloop.run(main(p.parse_args().n))
