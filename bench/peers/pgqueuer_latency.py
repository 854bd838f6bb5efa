"""pgqueuer pickup-latency runner (`bench/.venv-peers`); protocol in
bench/runners/latency_common.py.

One `QueueManager` (AsyncpgPoolDriver, pool of 10, `max_concurrent_tasks` 50,
`batch_size` 25, as in the drain benchmark). Load jobs have priority 0, probes priority
10 (pgqueuer fetches the highest first). Probes: `Queries.enqueue("probe", payload)` on
their own connection; pgqueuer notifies on insert (trigger on its table).

Usage (repo root): bench/.venv-peers/bin/python -m bench.peers.pgqueuer_latency --dsn URL
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, Job, Queries, QueueManager

from bench.runners.latency_common import LatencyArgs, Probes, remaining, run_main, summary

LIMIT = 50
INSERT_BATCH = 5_000


async def main(args: LatencyArgs) -> dict[str, Any]:
    probes = Probes()
    conn = await asyncpg.connect(args.dsn)
    pool = await asyncpg.create_pool(args.dsn, min_size=2, max_size=10)
    try:
        queries = Queries(AsyncpgDriver(conn))
        await queries.install()
        qm = QueueManager(Queries(AsyncpgPoolDriver(pool)))

        @qm.entrypoint("probe")
        async def probe(job: Job) -> None:
            assert job.payload is not None
            probes.start(int(job.payload))

        @qm.entrypoint("noop")
        async def noop(job: Job) -> None:
            return None

        task = asyncio.create_task(qm.run(batch_size=LIMIT // 2, max_concurrent_tasks=LIMIT))
        try:
            await asyncio.sleep(0.5)  # let the manager LISTEN before the first insert
            for start in range(0, args.load_n, INSERT_BATCH):
                size = min(INSERT_BATCH, args.load_n - start)
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)

            async def insert(i: int) -> None:
                await queries.enqueue("probe", str(i).encode(), 10)

            latencies = await probes.send_all(args, insert)
            left = await remaining(
                args.dsn, "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'noop'"
            )
        finally:
            qm.shutdown.set()
            await task
    finally:
        await pool.close()
        await conn.close()
    return summary("pgqueuer", args, latencies, load_left_after_probes=left)


if __name__ == "__main__":
    run_main(main)
