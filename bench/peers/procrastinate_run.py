"""procrastinate enqueue/drain runner (psycopg 3), run from `bench/.venv-peers`.

Enqueue: `Task.batch_defer_async(*kwargs)` -- one `procrastinate_defer_jobs_v1(array)` call
per batch.
Drain: one `procrastinate.worker.Worker` with `concurrency`, `listen_notify=True`, a psycopg
pool of `--pool-size` connections and `delete_jobs="never"` (procrastinate's default: it KEEPS
finished rows, status `succeeded`, like jobd); `--variant delete` sets `delete_jobs="always"`.
procrastinate fetches ONE job per query (`procrastinate_fetch_job_v2`) and finishes each job
with its own statement; that is its design, not a setting. Done = N rows `succeeded` (or N
rows gone with `--variant delete`).

Usage (repo root): bench/.venv-peers/bin/python -m bench.peers.procrastinate_run --dsn URL
"""

from __future__ import annotations

import asyncio
import logging
from importlib.metadata import version

from procrastinate import App, PsycopgConnector
from procrastinate.worker import Worker

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


def make_app(args: RunArgs, counter: Counter) -> App:
    # psycopg's conninfo accepts the same postgresql:// URL asyncpg does.
    connector = PsycopgConnector(conninfo=args.dsn, min_size=2, max_size=args.pool_size)
    app = App(connector=connector)

    @app.task(name="noop")
    async def noop() -> None:
        counter.hit()

    return app


async def main(args: RunArgs) -> Result:
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    counter = Counter(args.n)
    app = make_app(args, counter)
    delete = args.variant == "delete"
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        task = app.tasks["noop"]

        async def insert_all() -> None:
            for size in batches(args.n, args.insert_batch):
                await task.batch_defer_async(*([{}] * size))

        enqueue_s = await timed(insert_all)
        worker = Worker(
            app,
            concurrency=args.concurrency,
            listen_notify=True,
            delete_jobs="always" if delete else "never",
            install_signal_handlers=False,
            wait=True,
        )
        holder: dict[str, asyncio.Task[None]] = {}

        async def start() -> None:
            holder["task"] = asyncio.create_task(worker.run())

        async def stop() -> None:
            worker.stop()
            await holder["task"]

        done_sql = (
            f"SELECT {args.n} - count(*) FROM procrastinate_jobs"
            if delete
            else "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        )
        drain_s = await drain_with(args, counter, done_sql, start, stop)
    return Result(
        library="procrastinate",
        version=version("procrastinate"),
        n=args.n,
        concurrency=args.concurrency,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        rows_kept=await count(args.dsn, "SELECT count(*) FROM procrastinate_jobs"),
        notes={
            "driver": f"psycopg {version('psycopg')} (AsyncConnectionPool)",
            "insert_api": "Task.batch_defer_async",
            "listen_notify": True,
            "delete_jobs": "always" if delete else "never",
            "completed_rows": "deleted" if delete else "kept (status succeeded)",
        },
    )


if __name__ == "__main__":
    run_main(main)
