"""jobd enqueue/drain runner, run from the project's `.venv`.

Schema: `jobd.sql.migrate.migrate` (untimed). Enqueue: `jobd.engine.insert.insert_jobs`, one
`INSERT ... SELECT FROM unnest(...)` statement per `--insert-batch` jobs, each on its own
pool connection in autocommit. Drain: one `Engine` (one queue `default`, `limit =
concurrency`, `poll_interval_s = 0.1`) on a `jobd.sql.db.create_pool` pool of `--pool-size`
connections, with an async no-op worker. jobd KEEPS completed rows (state `completed`, until
the pruner's retention). Done = N rows `completed`.

Usage (repo root): .venv/bin/python -m bench.runners.jobd_run --dsn URL
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog

from bench.runners.common import (
    Counter,
    Result,
    RunArgs,
    batches,
    count,
    drain_with,
    run_main,
    timed,
)
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.sql.migrate import migrate

POLL_INTERVAL_S = 0.1


def jobd_version() -> str:
    """The installed jobd's version (its distribution is `pgjobd` since 0.1; `jobd` before)."""
    for distribution in ("pgjobd", "jobd"):
        try:
            return version(distribution)
        except PackageNotFoundError:
            continue
    return "unknown"


def quiet_logs() -> None:
    """Per-job log lines would measure the terminal, not the engine: warnings only."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def main(args: RunArgs) -> Result:
    quiet_logs()
    counter = Counter(args.n)
    pool = await create_pool(args.dsn, min_size=2, max_size=args.pool_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, "jobd")
        enqueue_s = await timed(lambda: enqueue(pool, args))
        drain_s = await drain(pool, args, counter)
    finally:
        await pool.close()
    return Result(
        library="jobd",
        version=jobd_version(),
        n=args.n,
        concurrency=args.concurrency,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        rows_kept=await count(args.dsn, "SELECT count(*) FROM jobd.jobs"),
        notes={
            "driver": f"asyncpg {version('asyncpg')} (jobd.sql.db.create_pool)",
            "insert_api": "jobd.engine.insert.insert_jobs",
            "queue_limit": args.concurrency,
            "poll_interval_s": POLL_INTERVAL_S,
            "completed_rows": "kept (state completed)",
        },
    )


async def enqueue(pool: Any, args: RunArgs) -> None:
    spec = JobSpec(worker="noop")
    for size in batches(args.n, args.insert_batch):
        async with pool.acquire() as conn:
            await insert_jobs(conn, [spec] * size)


async def drain(pool: Any, args: RunArgs, counter: Counter) -> float:
    async def noop(job: Any, ctx: Any) -> None:
        counter.hit()

    registry = WorkerRegistry()
    registry.register("noop", noop)
    config = EngineConfig(
        queues=(QueueConfig("default", limit=args.concurrency),),
        poll_interval_s=POLL_INTERVAL_S,
    )
    engine = Engine(pool, config, registry)
    done_sql = "SELECT count(*) FROM jobd.jobs WHERE state = 'completed'"
    return await drain_with(args, counter, done_sql, engine.start, engine.stop)


if __name__ == "__main__":
    run_main(main)
