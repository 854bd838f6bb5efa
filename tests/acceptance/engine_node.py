"""One engine process for the cluster acceptance test.

Usage: python tests/acceptance/engine_node.py DATABASE_URL NODE_NAME

Runs an `Engine` on queue `default` with a worker `record` that writes each execution
(job id, attempt, node, start and end on the database clock) into `public.executions`
and sleeps a few milliseconds in between. Prints `READY <node_id>` once started, then
runs until SIGTERM/SIGINT (graceful stop, exit 0) or until the engine fails (exit 1).
Logs go to stderr, warnings and up.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import structlog

from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool

HEARTBEAT_S = 0.5
LEASE_S = 1.0
LIMIT = 20
POOL_SIZE = 10  # the server is shared: workers hold a connection only briefly
WORK_S = 0.003

START = (
    "INSERT INTO public.executions (job_id, attempt, node, started_at) "
    "VALUES ($1, $2, $3, clock_timestamp()) RETURNING id"
)
END = "UPDATE public.executions SET ended_at = clock_timestamp() WHERE id = $1"


def config(name: str) -> EngineConfig:
    return EngineConfig(
        node_name=name,
        queues=(QueueConfig("default", limit=LIMIT),),
        poll_interval_s=0.2,
        shutdown_grace_s=2.0,
        heartbeat_s=HEARTBEAT_S,
        lease_s=LEASE_S,
        stage_interval_s=0.2,
    )


async def record(job: Any, ctx: Any) -> None:
    """Note this execution's start and end, sleeping a little in between."""
    async with ctx.pool.acquire() as conn:
        row_id = await conn.fetchval(START, job.id, job.attempt, ctx.node_id)
    await asyncio.sleep(WORK_S)
    async with ctx.pool.acquire() as conn:
        await conn.execute(END, row_id)


async def main(url: str, name: str) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    registry = WorkerRegistry()
    registry.register("record", record)
    pool = await create_pool(url, min_size=2, max_size=POOL_SIZE)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    engine = Engine(pool, config(name), registry)
    try:
        await engine.start()
        print(f"READY {engine.node_id}", flush=True)
        stopping = asyncio.ensure_future(stop.wait())
        failed = asyncio.ensure_future(engine.wait())
        await asyncio.wait({stopping, failed}, return_when=asyncio.FIRST_COMPLETED)
        await engine.stop()
        await engine.wait()  # raises EngineFailed (exit 1) when a background task died
    finally:
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
