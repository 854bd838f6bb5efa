"""oban-py (the Python Oban) enqueue/drain runner, run from `bench/.venv-peers312`
(oban requires Python >= 3.12).

Enqueue: `Oban.enqueue_many(jobs)` -- one multi-row insert per call, `--insert-batch`
jobs per call. Drain: one `Oban` instance on a psycopg pool of `--pool-size` connections
with one queue `default` whose limit is `concurrency`, an async no-op `@worker`;
leadership, stager, pruner etc. at oban's defaults (they run, as in a real deploy).
Oban KEEPS finished rows (state `completed`, until its pruner's max_age). Done = N rows
`completed`.

Usage (repo root): bench/.venv-peers312/bin/python -m bench.peers.oban_run --dsn URL
"""

from __future__ import annotations

import logging
from importlib.metadata import version

from oban import Oban, worker
from oban.schema import install

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

COUNTER: Counter | None = None  # workers are resolved by name: module state


@worker(queue="default")
class Noop:
    async def process(self, job: object) -> None:
        assert COUNTER is not None
        COUNTER.hit()


async def main(args: RunArgs) -> Result:
    global COUNTER
    COUNTER = Counter(args.n)
    logging.getLogger("oban").setLevel(logging.WARNING)
    pool = await Oban.create_pool(args.dsn, min_size=2, max_size=args.pool_size)
    try:
        await install(pool)
        client = Oban(pool=pool, name="Oban")

        async def insert_all() -> None:
            for size in batches(args.n, args.insert_batch):
                await client.enqueue_many([Noop.new({}) for _ in range(size)])

        enqueue_s = await timed(insert_all)
        holder: dict[str, Oban] = {}

        async def start() -> None:
            holder["oban"] = Oban(pool=pool, name="ObanBench", queues={"default": args.concurrency})
            await holder["oban"].start()

        async def stop() -> None:
            await holder["oban"].stop()

        done_sql = "SELECT count(*) FROM oban_jobs WHERE state = 'completed'"
        drain_s = await drain_with(args, COUNTER, done_sql, start, stop)
    finally:
        await pool.close()
    return Result(
        library="oban-py",
        version=version("oban"),
        n=args.n,
        concurrency=args.concurrency,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        rows_kept=await count(args.dsn, "SELECT count(*) FROM oban_jobs"),
        notes={
            "driver": f"psycopg {version('psycopg')} (AsyncConnectionPool)",
            "insert_api": "Oban.enqueue_many",
            "queue_limit": args.concurrency,
            "completed_rows": "kept (state completed)",
        },
    )


if __name__ == "__main__":
    run_main(main)
