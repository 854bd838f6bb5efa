"""pgqueuer enqueue/drain runner (asyncpg driver), run from `bench/.venv-peers`.

Enqueue: `Queries.enqueue(list, list, list)` -- pgqueuer's batch form, one
`INSERT ... SELECT unnest(...)` statement per call.
Drain: one `QueueManager` on an asyncpg pool of `--pool-size` connections
(`AsyncpgPoolDriver`: ~10% faster here than the single connection of `AsyncpgDriver` used by
pgqueuer's own benchmark, which `--variant conn` selects), `max_concurrent_tasks =
concurrency` and `batch_size = concurrency // 2` (the largest batch pgqueuer allows for that
cap). Completion buffers flush every `batch_size` jobs or 0.1 s (pgqueuer's defaults).
pgqueuer DELETES a job's queue row on completion and writes a row to `pgqueuer_log`
(durability `durable`, its default: every table logged). Done = no row left in `pgqueuer`.

Usage (repo root): bench/.venv-peers/bin/python -m bench.peers.pgqueuer_run --dsn URL
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

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


async def enqueue(dsn: str, args: RunArgs) -> float:
    """Seconds taken by the insert calls (connecting is not timed)."""
    conn = await asyncpg.connect(dsn)
    try:
        queries = Queries(AsyncpgDriver(conn))

        async def insert_all() -> None:
            for size in batches(args.n, args.insert_batch):
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)

        return await timed(insert_all)
    finally:
        await conn.close()


async def install(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await Queries(AsyncpgDriver(conn)).install()
    finally:
        await conn.close()


async def main(args: RunArgs) -> Result:
    await install(args.dsn)
    enqueue_s = await enqueue(args.dsn, args)
    counter = Counter(args.n)
    batch_size = max(1, args.concurrency // 2)
    holder: dict[str, object] = {}

    async def start() -> None:
        if args.variant != "conn":
            pool = await asyncpg.create_pool(args.dsn, min_size=2, max_size=args.pool_size)
            holder["closer"] = pool
            driver: object = AsyncpgPoolDriver(pool)
        else:
            conn = await asyncpg.connect(args.dsn)
            holder["closer"] = conn
            driver = AsyncpgDriver(conn)
        qm = QueueManager(Queries(driver))

        @qm.entrypoint("noop")
        async def noop(job: Job) -> None:
            counter.hit()

        holder["qm"] = qm
        holder["task"] = asyncio.create_task(
            qm.run(batch_size=batch_size, max_concurrent_tasks=args.concurrency)
        )

    async def stop() -> None:
        qm = holder["qm"]
        assert isinstance(qm, QueueManager)
        qm.shutdown.set()
        task = holder["task"]
        assert isinstance(task, asyncio.Task)
        await task
        await holder["closer"].close()  # type: ignore[attr-defined]

    driver_name = "AsyncpgDriver" if args.variant == "conn" else "AsyncpgPoolDriver"
    drain_s = await drain_with(
        args, counter, f"SELECT {args.n} - count(*) FROM pgqueuer", start, stop
    )
    return Result(
        library="pgqueuer",
        version=version("pgqueuer"),
        n=args.n,
        concurrency=args.concurrency,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        rows_kept=await count(args.dsn, "SELECT count(*) FROM pgqueuer"),
        notes={
            "driver": f"asyncpg {version('asyncpg')} ({driver_name})",
            "insert_api": "Queries.enqueue(lists)",
            "batch_size": batch_size,
            "max_concurrent_tasks": args.concurrency,
            "completed_rows": "deleted from pgqueuer; status row in pgqueuer_log",
            "log_rows": await count(args.dsn, "SELECT count(*) FROM pgqueuer_log"),
        },
    )


if __name__ == "__main__":
    run_main(main)
