"""The trigger path end to end, against pgqueuer's bare drain and a raw aiohttp loop (issue 13).

A table `items` of N matching rows (`processed IS NOT TRUE`), and ONE real `jobd run`
process (through bench/runners/counting_daemon.py) with one trigger `items.process`:
action `act`, `on_success: mark` (an `update` setting `processed = true`), queue `items`
of limit C (the concurrency), `scheduler_cron: false`. The clock starts just before the
trigger's scheduler job is enqueued (`POST /api/triggers/items/process/run` to the daemon's
admin listener) and stops when a separate connection, polling every 20 ms, sees no row left
unmarked (committed). So it counts the scheduler's scan and enqueue of N jobs, and N worker
jobs each re-reading its row, running the action, `on_success` and completing.

Variants, each in a fresh database, all in one run, in rounds whose order rotates:

- python part (action `python: bench.runners.actions:noop`, an async no-op):
  `jobd trigger, on_success`; `jobd trigger, trigger_once + on_success`;
  `pgqueuer bare drain` (bench/peers/pgqueuer_run.py: N no-op jobs, concurrency C; its
  clock starts at worker start, its enqueue is not timed); `jobd bare engine drain`
  (bench/runners/jobd_run.py, same shape: a reference, not a goal).
- http part (action `http` POST to a no-op aiohttp sink on loopback, its own process,
  bench/runners/http_sink.py; `on_success` also stores the response's `ref`):
  `jobd trigger + http` (default mode); the same with `action_in_transaction: false`;
  `raw aiohttp` (bench/runners/raw_http.py: the same N requests, same concurrency, one
  session, no database).

The `action_in_transaction: false` variant is measured only when that mode is there: its
config must pass `jobd check`, and a check run (sink answering after 2 s) must find, while
the actions wait on the sink, no row of theirs locked (`FOR UPDATE NOWAIT` succeeds) and
no daemon backend idle in a transaction holding an xid. Otherwise it is reported as not
measured, with what was seen.

Per row, for every jobd trigger run (the window is the clock's):
- statements: counted by the wrapper (every statement jobd sends through asyncpg, each a
  round trip: BEGIN and COMMIT included);
- transactions: `pg_stat_database` (xact_commit + xact_rollback) of the bench database from
  before the daemon started to after its last backend left (exact: counters flush at
  disconnect), minus the daemon's transactions outside the window (counted by the wrapper)
  and the harness's polls; the wrapper's own count of the window is kept beside it;
- connections: `pg_stat_activity` sampled every 50 ms (peak backends, peak active, peak and
  mean in a transaction, peak idle in a transaction holding an xid, i.e. row locks held
  while the client works);
- CPU: the daemon process's (/proc/PID/stat) and its backends' (Postgres) per row.

Usage (repo root):

    .venv/bin/python -m bench trigger_path            # as recorded: N=20,000, C=20, 3 rounds
    .venv/bin/python -m bench.trigger_path --n 2000 --rounds 1 --parts python   # a quick look

`python -m bench.trigger_path` prints the tables and writes bench/results/trigger_path-*.json
without touching bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.harness import results, runners, source
from bench.harness.daemon import Daemon, DaemonFailed, free_port
from bench.harness.db import fresh_database, server_url, server_version
from bench.harness.pgstats import (
    ActivitySampler,
    backend_cpu_s,
    cpu_delta_s,
    harness_connection,
    wait_no_backends,
    xacts,
)
from bench.trigger_mode import no_txn_mode_missing
from bench.trigger_report import markdown, summarize_runs
from bench.trigger_setup import (
    HTTP_NO_TXN,
    VARIANTS,
    Poller,
    Variant,
    config_text,
    dbname_of,
    prepare,
    start_sink,
    stop_sink,
)

BENCHMARK = "trigger_path"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="matching rows (jobs for the peers)")
    p.add_argument("--concurrency", type=int, default=20, help="queue limit / requests in flight")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every variant once")
    p.add_argument("--parts", default="python,http", help="python, http or both")
    p.add_argument("--timeout-s", type=float, default=300.0, help="per measurement")
    p.add_argument(
        "--plain", action="store_true", help="run `jobd run` without the statement counter"
    )
    return p.parse_args(argv)


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


async def measure_jobd(v: Variant, args: argparse.Namespace, sink: str) -> dict[str, Any]:
    """One trigger run in a fresh database (see the module docstring)."""
    admin_url = server_url()
    async with fresh_database(admin_url, prefix="bench_tp") as url:
        await prepare(url, args.n)
        db = dbname_of(url)
        admin = await harness_connection(admin_url)
        try:
            await wait_no_backends(admin, db)
            x0 = await xacts(admin, db)
            port = free_port()
            text = config_text(v, url, port, args.concurrency, sink, "hooks")
            async with Daemon(text, port, counting=not args.plain) as daemon:
                run = await timed_run(daemon, admin, admin_url, db, url, args)
            run["exit_code"] = daemon.returncode
            flushed = await wait_no_backends(admin, db)
            run["xacts_lifetime_server"] = await xacts(admin, db) - x0 - run["poller_queries"]
            run["xacts_flushed"] = flushed
        finally:
            await admin.close()
    return per_row(run, daemon.final_counts, args.n)


async def timed_run(
    daemon: Daemon,
    admin: asyncpg.Connection,
    admin_url: str,
    db: str,
    url: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    poller = await Poller.open(url)
    sampler = ActivitySampler(admin_url, db)
    try:
        c0, cpu0, pg0 = await daemon.counts(), daemon.cpu_s(), await backend_cpu_s(admin, db)
        await sampler.start()
        started = time.perf_counter()
        await daemon.api("/api/triggers/items/process/run", {})
        await poller.wait_marked(time.monotonic() + args.timeout_s)
        seconds = time.perf_counter() - started
        c1, cpu1, pg1 = await daemon.counts(), daemon.cpu_s(), await backend_cpu_s(admin, db)
        states = await poller.fetch(
            "SELECT state, count(*) AS n FROM jobd.jobs WHERE worker = 'items.process'"
            " GROUP BY state ORDER BY state"
        )
    finally:
        activity = await sampler.stop()
        await poller.conn.close()
    return {
        "seconds": seconds,
        "rows_per_s": args.n / seconds,
        "counts_before": c0,
        "counts_after": c1,
        "daemon_cpu_s": None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        "postgres_cpu_s": cpu_delta_s(pg0, pg1),
        "connections": activity,
        "jobs_by_state": {r["state"]: r["n"] for r in states},
        "poller_queries": poller.queries,
    }


def per_row(run: dict[str, Any], final: dict[str, Any] | None, n: int) -> dict[str, Any]:
    """The run's totals per row. Transactions: the server's lifetime count minus what the
    wrapper counted outside the window (start-up, readiness probes, shutdown)."""
    c0, c1 = run.pop("counts_before"), run.pop("counts_after")
    out: dict[str, Any] = dict(run)
    if run["daemon_cpu_s"] is not None:
        out["daemon_cpu_us_per_row"] = round(run["daemon_cpu_s"] / n * 1e6, 1)
    out["postgres_cpu_us_per_row"] = round(run["postgres_cpu_s"] / n * 1e6, 1)
    if c0 is None or c1 is None:
        return out
    statements = c1["statements"] - c0["statements"]
    window_xacts = c1["transactions"] - c0["transactions"]
    out["statements"] = statements
    out["statements_per_row"] = round(statements / n, 3)
    out["xacts_window_client"] = window_xacts
    out["xacts_per_row_client"] = round(window_xacts / n, 3)
    out["connections_opened"] = c1["connections"] - c0["connections"]
    by = diff(c1["by_statement"], c0["by_statement"])
    out["statements_by_text"] = dict(sorted(by.items(), key=lambda kv: -kv[1]))
    if final is not None:
        outside = final["transactions"] - window_xacts
        server = run["xacts_lifetime_server"] - outside
        out["xacts_lifetime_client"] = final["transactions"]
        out["xacts_window_server"] = server
        out["xacts_per_row"] = round(server / n, 3)
    return out


async def measure_runner(v: Variant, args: argparse.Namespace, sink: str) -> dict[str, Any]:
    """pgqueuer's or jobd's bare drain, or the raw HTTP loop: one runner process."""
    if v.kind == "raw":
        options = {"url": f"{sink}/hooks", "n": args.n, "concurrency": args.concurrency}
        return await asyncio.to_thread(
            runners.run, runners.JOBD_PYTHON, "bench.runners.raw_http", options, args.timeout_s
        )
    module, venv = {
        "pgqueuer": ("bench.peers.pgqueuer_run", "peers"),
        "engine": ("bench.runners.jobd_run", "jobd"),
    }[v.kind]
    async with fresh_database(server_url(), prefix=f"bench_tp_{v.kind}") as dsn:
        options = {
            "dsn": dsn,
            "n": args.n,
            "concurrency": args.concurrency,
            "insert_batch": 5000,
            "pool_size": 10,
            "timeout_s": args.timeout_s,
        }
        python = runners.python_for(venv)
        result = await asyncio.to_thread(runners.run, python, module, options, args.timeout_s + 60)
    return result | {"rows_per_s": result["drain_per_s"]}


Measure = Callable[[Variant, argparse.Namespace, str], Awaitable[dict[str, Any]]]


async def rounds(
    variants: list[Variant], args: argparse.Namespace, sink: str, failures: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """`args.rounds` rounds, each running every variant once in a rotated order; a variant
    that fails is recorded in `failures` with its reason and not run again."""
    runs: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        k = r % len(variants)
        for v in variants[k:] + variants[:k]:
            if v.name in failures:
                continue
            measure: Measure = measure_jobd if v.kind == "jobd" else measure_runner
            try:
                result = await measure(v, args, sink)
            except (DaemonFailed, runners.RunnerFailed, TimeoutError, OSError) as exc:
                failures[v.name] = " ".join(f"{type(exc).__name__}: {exc}".split())[:600]
                print(f"{v.name}: NOT MEASURED: {failures[v.name]}", flush=True)
                continue
            runs[v.name].append(result)
            extra = ""
            if "statements_per_row" in result:
                extra = (
                    f"  {result['statements_per_row']:.2f} statements/row,"
                    f" {result.get('xacts_per_row', float('nan')):.2f} transactions/row"
                )
            print(
                f"round {r + 1}/{args.rounds} {v.name:52s} {result['rows_per_s']:>8,.0f} rows/s"
                + extra,
                flush=True,
            )
    return runs


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Run the rounds; returns {"markdown", "data"} for the harness."""
    parts = {p.strip() for p in args.parts.split(",")}
    variants = [v for v in VARIANTS if v.part in parts]
    failures: dict[str, str] = {}
    load_start = round(os.getloadavg()[0], 2)
    sink_proc, sink = start_sink()
    check: Any = None
    mode_missing: set[str] = set()
    try:
        if HTTP_NO_TXN in variants:
            try:
                reason, check = await no_txn_mode_missing(args, sink)
            except (DaemonFailed, TimeoutError, OSError) as exc:
                reason = " ".join(f"the mode check failed: {type(exc).__name__}: {exc}".split())
            if reason:
                failures[HTTP_NO_TXN.name] = reason[:600]
                print(f"{HTTP_NO_TXN.name}: NOT MEASURED: {reason}", flush=True)
        mode_missing = set(failures)
        runs = await rounds(variants, args, sink, failures)
    finally:
        stop_sink(sink_proc)
    summaries = summarize_runs(runs)
    meta = {
        "jobd_source": source.describe(),
        "counting": "plain `jobd run`"
        if args.plain
        else "`jobd run` through bench/runners/counting_daemon.py",
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    data = {
        "args": vars(args),
        "meta": meta,
        "runs": runs,
        "summaries": summaries,
        "not_measured": failures,
        "action_in_transaction_check": check,
    }
    md = markdown(args, variants, runs, summaries, failures, meta)
    # A mode that is not there yet is reported, not a failure of the run.
    return {"markdown": md, "data": data, "failed": bool(set(failures) - mode_missing)}


async def main_async(args: argparse.Namespace) -> int:
    out = await collect(args)
    path = results.write_json(
        BENCHMARK, {"postgres": await server_version(server_url()), **out["data"]}
    )
    print("\n" + out["markdown"] + f"\n\nresults: {path}")
    return 1 if out["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
