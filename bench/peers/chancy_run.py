"""chancy enqueue/drain runner (psycopg 3), run from `bench/.venv-peers`.

Enqueue: `Chancy.push_many(jobs, batch_size=--insert-batch)` -- chancy's bulk API; it
commits one transaction per batch but runs one INSERT per job inside it.
Drain: one `chancy.Worker` on a queue declared with the **async executor**
(`Chancy.Executor.Async`), `concurrency`, `eager_polling=True` (poll again as soon as a
slot frees, chancy's low-latency setting) and `polling_interval=1`; notifications on;
default plugins off (leadership, pruner, recovery, metrics, workflows: background work
the other runners do not do). chancy KEEPS finished rows (state `succeeded`); its worker
writes completions in batches every second. Done = N rows `succeeded`.

Usage (repo root): bench/.venv-peers/bin/python -m bench.peers.chancy_run --dsn URL
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from chancy import Chancy, Job, Queue, Worker

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

QUEUE = "bench"
COUNTER: Counter | None = None  # the job function is imported by name: module state


async def noop() -> None:
    assert COUNTER is not None
    COUNTER.hit()


async def main(args: RunArgs) -> Result:
    global COUNTER
    COUNTER = Counter(args.n)
    log = logging.getLogger("bench.chancy")
    log.setLevel(logging.WARNING)
    chancy = Chancy(
        args.dsn, max_connection_pool_size=args.pool_size, no_default_plugins=True, log=log
    )
    async with chancy:
        await chancy.migrate()
        await chancy.declare(
            Queue(
                QUEUE,
                concurrency=args.concurrency,
                executor=Chancy.Executor.Async,
                eager_polling=True,
                polling_interval=1,
            )
        )
        job = Job.from_func(noop, queue=QUEUE)

        async def insert_all() -> None:
            for size in batches(args.n, args.insert_batch):
                async for _refs in chancy.push_many([job] * size, batch_size=size):
                    pass

        enqueue_s = await timed(insert_all)
        worker = Worker(chancy, register_signal_handlers=False, shutdown_timeout=10)

        async def start() -> None:
            await worker.start()

        async def stop() -> None:
            await worker.stop()

        done_sql = "SELECT count(*) FROM chancy_jobs WHERE state = 'succeeded'"
        drain_s = await drain_with(args, COUNTER, done_sql, start, stop)
    return Result(
        library="chancy",
        version=version("chancy"),
        n=args.n,
        concurrency=args.concurrency,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        rows_kept=await count(args.dsn, "SELECT count(*) FROM chancy_jobs"),
        notes={
            "driver": f"psycopg {version('psycopg')} (AsyncConnectionPool)",
            "insert_api": "Chancy.push_many (one INSERT per job, one commit per batch)",
            "executor": "async",
            "eager_polling": True,
            "completed_rows": "kept (state succeeded)",
        },
    )


if __name__ == "__main__":
    run_main(main)
