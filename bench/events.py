"""Change-data events (issue 14): how soon a committed row's action starts, what the
database trigger costs the application's writes, and how many rows/s one daemon handles.

ONE real `jobd run` process (plain CLI, no statement counter) on a fresh database with a
table `orders` whose trigger has `events: [insert]`, `scheduler_cron: false` (events
only) and a python action (`bench.runners.event_actions:started`) that appends the row's
id and the wall clock to a file the moment it starts. The writer is this process, on its
own connections; its clock is the same machine's.

1. Low load: single-row INSERTs (autocommit) at a steady rate; per row, commit returned
   to the writer -> its action started (p50, p95, p99, max).
2. Under a backlog: a bulk INSERT of `--backlog` rows (one statement: past 1,000 rows
   one expansion job, which the daemon turns into the rows' jobs), then probe rows at
   the same steady rate while the daemon works through the backlog: the probes'
   commit-to-start latency, and how long the backlog took (its rows/s).
3. Stream: `--writers` connections insert single-row transactions as fast as they can,
   `--stream` rows in all; rows/s end to end (first commit -> last job completed), beside
   the writers' own rate.
4. Write cost (daemon stopped, so nothing drains): a `--bulk`-row INSERT ... SELECT and
   `--singles` single-row INSERTs (one connection, autocommit) into `orders` (with the
   jobd trigger) and into `orders_plain` (the same table without it), rounds alternating
   which goes first, jobs and tables truncated before each; the median ratios.

Goals (issue 14): p50 < 10 ms and p99 < 50 ms at low load; bulk INSERT <= 1.5x.

Usage (repo root): .venv/bin/python -m bench events [--quick]   (or python -m bench.events)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import results, source
from bench.harness.daemon import Daemon, free_port
from bench.harness.db import fresh_database, server_url
from bench.harness.pgstats import harness_connection

GOAL_P50_MS, GOAL_P99_MS, GOAL_BULK_RATIO = 10.0, 50.0, 1.5
BACKLOG_BASE, PROBE_BASE, STREAM_BASE = 1_000_000, 2_000_000, 3_000_000

CONFIG = """version: 1
database: {{url: "{url}"}}
log: {{level: warning, format: json}}
admin: {{listen: "127.0.0.1:{port}"}}
queues: {{events: {limit}}}
resources:
  orders:
    table: public.orders
    actions:
      started: {{python: "bench.runners.event_actions:started"}}
    triggers:
      process:
        action: started
        where: "status = 'new'"
        scheduler_cron: false
        events: [insert]
        queue: events
"""

TABLES = """
CREATE TABLE public.orders (
  id bigint PRIMARY KEY, status text NOT NULL DEFAULT 'new', payload text,
  inserted_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE public.orders_plain (LIKE public.orders INCLUDING ALL);
"""
INSERT_ONE = "INSERT INTO public.{table} (id, payload) VALUES ($1, 'x')"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=20.0, help="single-row INSERTs/s (1, 2)")
    p.add_argument("--low", type=int, default=300, help="rows of the low-load phase")
    p.add_argument("--backlog", type=int, default=20_000, help="rows of the backlog INSERT")
    p.add_argument("--probes", type=int, default=100, help="probe rows during the backlog")
    p.add_argument("--stream", type=int, default=20_000, help="rows of the stream")
    p.add_argument("--writers", type=int, default=4, help="writer connections of the stream")
    p.add_argument("--bulk", type=int, default=100_000, help="rows of the bulk INSERT (4)")
    p.add_argument("--singles", type=int, default=10_000, help="single-row INSERTs (4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the write cost")
    p.add_argument("--limit", type=int, default=20, help="the events queue's limit")
    return p.parse_args(argv)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "n": len(ordered),
        "p50": at(0.5),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 2),
    }


class Starts:
    """The action starts the daemon's action wrote: row id -> wall clock."""

    def __init__(self, path: Path) -> None:
        self.path, self.seen, self._offset = path, dict[int, float](), 0

    def read(self) -> dict[int, float]:
        with self.path.open() as f:
            f.seek(self._offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            row, at = line.split()
            self.seen[int(row)] = float(at)
        return self.seen

    async def wait_for(self, ids: range, timeout_s: float) -> None:
        """Until every row of `ids` has its action start (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.read()
            missing = sum(1 for i in ids if i not in seen)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{missing} of {len(ids)} actions did not start in time")
            await asyncio.sleep(0.05)


async def steady(conn: Any, ids: range, rate: float) -> dict[int, float]:
    """Single-row INSERTs at `rate`/s: row id -> wall clock when its commit returned."""
    committed: dict[int, float] = {}
    step, next_at = 1.0 / rate, time.monotonic()
    for i in ids:
        await conn.execute(INSERT_ONE.format(table="orders"), i)
        committed[i] = time.time()
        next_at += step
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return committed


def latencies_ms(committed: dict[int, float], starts: dict[int, float]) -> list[float]:
    return [(starts[i] - at) * 1000 for i, at in committed.items()]


async def low_load(conn: Any, starts: Starts, args: argparse.Namespace) -> dict[str, Any]:
    ids = range(1, args.low + 1)
    committed = await steady(conn, ids, args.rate)
    await starts.wait_for(ids, 30)
    return percentiles(latencies_ms(committed, starts.seen))


async def backlog(conn: Any, starts: Starts, args: argparse.Namespace) -> dict[str, Any]:
    first, last = BACKLOG_BASE + 1, BACKLOG_BASE + args.backlog
    await conn.execute(
        "INSERT INTO public.orders (id) SELECT g FROM generate_series($1::bigint, $2::bigint) g",
        first,
        last,
    )
    committed_at = time.time()
    probes = range(PROBE_BASE + 1, PROBE_BASE + args.probes + 1)
    committed = await steady(conn, probes, args.rate)
    await starts.wait_for(range(first, last + 1), 600)
    await starts.wait_for(probes, 60)
    drained_s = max(starts.seen[i] for i in range(first, last + 1)) - committed_at
    return {
        "rows": args.backlog,
        "drained_s": round(drained_s, 2),
        "rows_per_s": round(args.backlog / drained_s),
        "probes": percentiles(latencies_ms(committed, starts.seen)),
    }


async def stream(url: str, args: argparse.Namespace) -> dict[str, Any]:
    ids = iter(range(STREAM_BASE + 1, STREAM_BASE + args.stream + 1))
    conns = [await harness_connection(url) for _ in range(args.writers)]

    async def writer(conn: Any) -> None:
        for i in ids:
            await conn.execute(INSERT_ONE.format(table="orders"), i)

    started = time.monotonic()
    try:
        await asyncio.gather(*(writer(c) for c in conns))
        written_s = time.monotonic() - started
        deadline = started + 600
        while True:
            done = await conns[0].fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE state = 'completed'"
                " AND (args->'pk'->>'id')::bigint > $1",
                STREAM_BASE,
            )
            if done >= args.stream or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        handled_s = time.monotonic() - started
    finally:
        for c in conns:
            await c.close()
    return {
        "rows": args.stream,
        "writers": args.writers,
        "completed": int(done),
        "writers_rows_per_s": round(args.stream / written_s),
        "end_to_end_rows_per_s": round(int(done) / handled_s),
        "seconds": round(handled_s, 2),
    }


async def timed(conn: Any, sql: str, *args: Any) -> float:
    started = time.perf_counter()
    await conn.execute(sql, *args)
    return time.perf_counter() - started


async def write_cost(conn: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Median times of the bulk INSERT and the single-row INSERTs, with and without the
    trigger (daemon stopped), and their ratios."""
    times: dict[str, list[float]] = {
        k: [] for k in ("bulk", "bulk_plain", "singles", "singles_plain")
    }
    bulk = "INSERT INTO public.{table} (id) SELECT g FROM generate_series(1, $1::bigint) g"
    for r in range(args.rounds):
        order = ("orders", "orders_plain") if r % 2 == 0 else ("orders_plain", "orders")
        for table in order:
            suffix = "" if table == "orders" else "_plain"
            await conn.execute("TRUNCATE public.orders, public.orders_plain, jobd.jobs")
            await conn.execute("VACUUM ANALYZE jobd.jobs")
            times["bulk" + suffix].append(await timed(conn, bulk.format(table=table), args.bulk))
            await conn.execute("TRUNCATE public.orders, public.orders_plain, jobd.jobs")
            statement = await conn.prepare(INSERT_ONE.format(table=table))
            started = time.perf_counter()
            for i in range(1, args.singles + 1):
                await statement.fetch(i)
            times["singles" + suffix].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "bulk_s": round(med["bulk"], 3),
        "bulk_plain_s": round(med["bulk_plain"], 3),
        "bulk_ratio": round(med["bulk"] / med["bulk_plain"], 2),
        "singles_s": round(med["singles"], 3),
        "singles_plain_s": round(med["singles_plain"], 3),
        "singles_ratio": round(med["singles"] / med["singles_plain"], 2),
        "singles_us_extra": round((med["singles"] - med["singles_plain"]) / args.singles * 1e6),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jobd-events-") as tmp:
        out = Path(tmp) / "starts.txt"
        out.touch()
        os.environ["JOBD_BENCH_EVENTS_FILE"] = str(out)  # the daemon's action appends here
        async with fresh_database(server_url(), prefix="bench_events") as url:
            conn = await harness_connection(url)
            try:
                await conn.execute(TABLES)
                port = free_port()
                text = CONFIG.format(url=url, port=port, limit=args.limit)
                starts = Starts(out)
                async with Daemon(text, port, counting=False):
                    await asyncio.sleep(2.0)  # the producers settle after ready
                    low = await low_load(conn, starts, args)
                    print(f"events low load: {low}", flush=True)
                    under = await backlog(conn, starts, args)
                    print(f"events backlog: {under}", flush=True)
                    flow = await stream(url, args)
                    print(f"events stream: {flow}", flush=True)
                cost = await write_cost(conn, args)
                print(f"events write cost: {cost}", flush=True)
            finally:
                await conn.close()
    return {"low_load": low, "backlog": under, "stream": flow, "write_cost": cost}


def _goal(ok: bool) -> str:
    return "met" if ok else "NOT met"


def markdown(run: dict[str, Any], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    low, under, flow, cost = run["low_load"], run["backlog"], run["stream"], run["write_cost"]
    probes = under["probes"]
    low_ok = low["p50"] < GOAL_P50_MS and low["p99"] < GOAL_P99_MS
    return "\n".join(
        [
            f"One `jobd run` (events only: `events: [insert]`, `scheduler_cron: false`, a"
            f" python action recording its start; queue limit {args.limit}) on a fresh"
            f" database; writers on their own connections. jobd: {meta['jobd_source']}."
            f" Load average (1 min) {meta['load_start']} at start, {meta['load_end']} at end.",
            "",
            "| commit -> action start | rows | p50 ms | p95 ms | p99 ms | max ms | goal |",
            "|---|---|---|---|---|---|---|",
            f"| low load ({args.rate:g} single-row INSERTs/s) | {low['n']} | {low['p50']} |"
            f" {low['p95']} | {low['p99']} | {low['max']} | p50 < {GOAL_P50_MS:g}, p99 <"
            f" {GOAL_P99_MS:g}: {_goal(low_ok)} |",
            f"| under a backlog ({under['rows']:,} rows in one INSERT, then probes at"
            f" {args.rate:g}/s) | {probes['n']} | {probes['p50']} | {probes['p95']} |"
            f" {probes['p99']} | {probes['max']} | (none) |",
            "",
            f"The backlog's {under['rows']:,} rows started within {under['drained_s']} s of"
            f" its commit ({under['rows_per_s']:,} rows/s).",
            "",
            "| the application's writes | without the jobd trigger | with it | ratio | goal |",
            "|---|---|---|---|---|",
            f"| {args.bulk:,}-row INSERT ... SELECT (median of {args.rounds}) |"
            f" {cost['bulk_plain_s']} s | {cost['bulk_s']} s | {cost['bulk_ratio']}x |"
            f" <= {GOAL_BULK_RATIO}x: {_goal(cost['bulk_ratio'] <= GOAL_BULK_RATIO)} |",
            f"| {args.singles:,} single-row INSERTs, autocommit (median of {args.rounds}) |"
            f" {cost['singles_plain_s']} s | {cost['singles_s']} s | {cost['singles_ratio']}x"
            f" (+{cost['singles_us_extra']} µs a row) | (none) |",
            "",
            "| INSERT stream | rows | writers | writers' rows/s | end to end rows/s (first"
            " commit -> last job completed) |",
            "|---|---|---|---|---|",
            f"| single-row transactions | {flow['rows']:,} | {flow['writers']} |"
            f" {flow['writers_rows_per_s']:,} | {flow['end_to_end_rows_per_s']:,} |",
        ]
    )


async def collect_args(args: argparse.Namespace) -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    run = await measure(args)
    meta = {
        "jobd_source": source.describe(),
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    data = {"args": vars(args), "meta": meta, "run": run}
    return {"markdown": markdown(run, args, meta), "data": data}


async def collect(quick: bool) -> dict[str, Any]:
    argv = (
        [
            "--low",
            "50",
            "--backlog",
            "2000",
            "--probes",
            "20",
            "--stream",
            "2000",
            "--bulk",
            "10000",
            "--singles",
            "1000",
            "--rounds",
            "1",
        ]
        if quick
        else []
    )
    return await collect_args(parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    out = asyncio.run(collect_args(parse_args(argv)))
    path = results.write_json("events", out["data"])
    print("\n" + out["markdown"] + f"\n\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
