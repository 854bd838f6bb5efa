"""jobd pickup-latency runner (project `.venv`); protocol in bench/runners/latency_common.py.

One `Engine` (queue `default`, limit 50, `poll_interval_s` 1.0 so that a pickup within it
is the notification's doing), asyncpg pool of 10. Load jobs have priority 1, probes
priority 0 (jobd fetches the lowest priority number first). Probes are inserted with
`insert_jobs(..., notify=True)` on their own pool connection (autocommit).

Usage (repo root): .venv/bin/python -m bench.runners.jobd_latency --dsn URL [--load-n N]
"""

from __future__ import annotations

from typing import Any

from bench.runners.jobd_run import quiet_logs
from bench.runners.latency_common import LatencyArgs, Probes, remaining, run_main, summary
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.sql.migrate import migrate

LIMIT = 50
POLL_INTERVAL_S = 1.0
INSERT_BATCH = 5_000


async def main(args: LatencyArgs) -> dict[str, Any]:
    quiet_logs()
    probes = Probes()

    async def probe(job: Any, ctx: Any) -> None:
        probes.start(job.args["i"])

    async def noop(job: Any, ctx: Any) -> None:
        return None

    registry = WorkerRegistry()
    registry.register("probe", probe)
    registry.register("noop", noop)
    pool = await create_pool(args.dsn, min_size=2, max_size=10)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, "jobd")
        config = EngineConfig(
            queues=(QueueConfig("default", limit=LIMIT),), poll_interval_s=POLL_INTERVAL_S
        )
        engine = Engine(pool, config, registry)
        await engine.start()
        try:
            load = JobSpec(worker="noop", priority=1)
            for start in range(0, args.load_n, INSERT_BATCH):
                async with pool.acquire() as conn:
                    await insert_jobs(conn, [load] * min(INSERT_BATCH, args.load_n - start))

            async def insert(i: int) -> None:
                async with pool.acquire() as conn:
                    await insert_jobs(conn, [JobSpec(worker="probe", args={"i": i})])

            latencies = await probes.send_all(args, insert)
            left = await remaining(
                args.dsn,
                "SELECT count(*) FROM jobd.jobs WHERE worker = 'noop' AND state <> 'completed'",
            )
        finally:
            await engine.stop()
    finally:
        await pool.close()
    return summary(
        "jobd", args, latencies, load_left_after_probes=left, poll_interval_s=POLL_INTERVAL_S
    )


if __name__ == "__main__":
    run_main(main)
