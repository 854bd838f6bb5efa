"""What every enqueue/drain runner shares: its command line, the timing, the result line.

A runner is one process per measurement (jobd's from the project `.venv`, each peer's from
`bench/.venv-peers`). It gets a fresh, empty database, installs its library's schema
(untimed), then:

1. **enqueue** (timed): N no-op jobs through the library's bulk insert, `--insert-batch`
   jobs per call; the clock stops when the last insert has returned (committed).
2. **drain** (timed): the clock starts just before the worker is started (so worker
   start-up -- schema checks, LISTEN, pool warm-up -- is counted, as it would be for a
   real deploy) and stops when a separate monitoring connection first sees all N jobs
   finished *in the database* (committed), not when the last no-op returned. The monitor
   stays idle until the no-op has been called N times in-process, then polls every
   `POLL_S`, so polling adds no load during the run and at most `POLL_S` to the time.
3. stops the worker (untimed) and prints ONE JSON line on stdout.

Only stdlib + asyncpg here: the peers' virtualenv imports this module too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

POLL_S = 0.005
DEADLINE_S = 300.0  # a drain that takes longer than this is reported as a failure


@dataclass
class RunArgs:
    dsn: str
    n: int
    concurrency: int
    insert_batch: int
    pool_size: int
    timeout_s: float
    variant: str  # a runner-specific configuration switch ("" = the default)


def parse_args(argv: list[str] | None = None) -> RunArgs:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True, help="a fresh, empty database")
    parser.add_argument("--n", type=int, default=20_000, help="jobs to enqueue and drain")
    parser.add_argument("--concurrency", type=int, default=50, help="jobs in flight at once")
    parser.add_argument("--insert-batch", type=int, default=5_000, help="jobs per insert call")
    parser.add_argument("--pool-size", type=int, default=10, help="connections, where pooled")
    parser.add_argument("--timeout-s", type=float, default=DEADLINE_S)
    parser.add_argument("--variant", default="", help="runner-specific configuration")
    ns = parser.parse_args(argv)
    return RunArgs(
        dsn=ns.dsn,
        n=ns.n,
        concurrency=ns.concurrency,
        insert_batch=ns.insert_batch,
        pool_size=ns.pool_size,
        timeout_s=ns.timeout_s,
        variant=ns.variant,
    )


@dataclass
class Result:
    library: str
    version: str
    n: int
    concurrency: int
    enqueue_s: float
    drain_s: float
    rows_kept: int  # job rows still in the table after the drain (0 = deleted on completion)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def enqueue_per_s(self) -> float:
        return self.n / self.enqueue_s

    @property
    def drain_per_s(self) -> float:
        return self.n / self.drain_s

    def emit(self) -> None:
        line = asdict(self) | {
            "enqueue_per_s": round(self.enqueue_per_s, 1),
            "drain_per_s": round(self.drain_per_s, 1),
        }
        print(json.dumps(line), flush=True)


class Counter:
    """Counts no-op calls; sets `reached` when the N-th call happens."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0
        self.reached = asyncio.Event()

    def hit(self) -> None:
        self.calls += 1
        if self.calls >= self.n:
            self.reached.set()


def batches(n: int, size: int) -> list[int]:
    """Sizes of the insert calls: [size, size, ..., rest]."""
    full, rest = divmod(n, size)
    return [size] * full + ([rest] if rest else [])


async def timed(step: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await step()
    return time.perf_counter() - started


async def wait_done(dsn: str, done_sql: str, n: int, counter: Counter, timeout_s: float) -> None:
    """Return once `done_sql` (one integer) reaches n; poll only after the N-th no-op call."""
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(timeout_s):
            await counter.reached.wait()
            while await conn.fetchval(done_sql) < n:
                await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


async def drain_with(
    args: RunArgs,
    counter: Counter,
    done_sql: str,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> float:
    """Time `start()` (which launches the worker and returns) until every job is done
    according to `done_sql`, then `stop()` the worker (untimed). Returns seconds.

    The database is ANALYZEd first (untimed): a freshly filled table has no statistics,
    and a plan made for an empty table would measure autovacuum's timing, not the library.
    """
    conn = await asyncpg.connect(args.dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    started = time.perf_counter()
    await start()
    try:
        await wait_done(args.dsn, done_sql, args.n, counter, args.timeout_s)
        return time.perf_counter() - started
    finally:
        await stop()


async def count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def run_main(main: Callable[[RunArgs], Coroutine[Any, Any, Result]]) -> None:
    """Parse argv, run `main` on uvloop (every runner uses it: same loop for everyone)."""
    import uvloop

    args = parse_args()
    try:
        result: Result = uvloop.run(main(args))
    except TimeoutError:
        print(json.dumps({"error": f"timed out after {args.timeout_s}s"}), flush=True)
        sys.exit(2)
    result.emit()
