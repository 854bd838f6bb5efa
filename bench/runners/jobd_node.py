"""One jobd engine process for the scaling benchmark (project `.venv`).

Usage: python -m bench.runners.jobd_node --dsn URL [--limit 50] [--pool-size 10]

Runs an `Engine` on queue `default` with an async no-op worker `noop`, prints `READY`
once started, and runs until its stdin closes (then stops gracefully and exits 0).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench.runners.jobd_run import quiet_logs
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool


async def noop(job: Any, ctx: Any) -> None:
    return None


async def main(dsn: str, limit: int, pool_size: int) -> None:
    quiet_logs()
    registry = WorkerRegistry()
    registry.register("noop", noop)
    pool = await create_pool(dsn, min_size=2, max_size=pool_size)
    config = EngineConfig(queues=(QueueConfig("default", limit=limit),), poll_interval_s=0.1)
    engine = Engine(pool, config, registry)
    try:
        await engine.start()
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await engine.stop()
    finally:
        await pool.close()


if __name__ == "__main__":
    import uvloop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", required=True)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--pool-size", type=int, default=10)
    ns = p.parse_args()
    uvloop.run(main(ns.dsn, ns.limit, ns.pool_size))
