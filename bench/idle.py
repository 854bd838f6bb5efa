"""An idle daemon: what `jobd run` costs the database and the machine when there is no work.

ONE real `jobd run` process (through bench/runners/counting_daemon.py) with 10 queues
(`q0`..`q9`, limit 5 each) and one trigger (`items.process` on `q0`, its scheduler on
`q1`, the default `scheduler_cron` of every minute) over a table of 100 rows that all
fail its `where`, in a fresh database. After `/readyz` and a warm-up (15 s), a window of
30 s:

- statements/s: counted by the wrapper's query logger (every round trip);
- transactions/s: the wrapper's count, and `pg_stat_database` (xact_commit +
  xact_rollback) of the bench database read from the admin database at both ends (a
  backend's counters reach it when it next flushes, so the server figure over a window is
  approximate; the wrapper's is exact and agrees with the server's over a daemon's lifetime);
- CPU %: the daemon process's utime + stime from /proc/PID/stat over the window (100% = one
  core), and the same for its Postgres backends;
- the backends it keeps connected, and the statements that ran, by text.

Issue 13's goal: at most 5 statements a second in total, under 1% CPU.

Usage (repo root): .venv/bin/python -m bench idle [--quick]   (or python -m bench.idle)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from bench.harness import results, source
from bench.harness.daemon import Daemon, free_port
from bench.harness.db import fresh_database, server_url
from bench.harness.pgstats import (
    HARNESS_APP,
    backend_cpu_s,
    cpu_delta_s,
    harness_connection,
    xacts,
)

QUEUES = 10
QUEUE_LIMIT = 5
GOAL_STATEMENTS_S = 5.0
GOAL_CPU_PERCENT = 1.0

CONFIG = """version: 1
database: {{url: "{url}"}}
log: {{level: warning, format: json}}
admin: {{listen: "127.0.0.1:{port}"}}
queues: {{{queues}}}
resources:
  items:
    table: public.items
    actions:
      mark: {{update: {{set: {{processed: true}}}}}}
    triggers:
      process: {{action: mark, where: "processed IS NOT TRUE", queue: q0, scheduler_queue: q1}}
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup-s", type=float, default=15.0, help="after ready, before the window")
    p.add_argument("--window-s", type=float, default=30.0, help="the measured window")
    p.add_argument("--repeats", type=int, default=1, help="daemons measured one after another")
    return p.parse_args(argv)


async def prepare(url: str) -> None:
    conn = await harness_connection(url)
    try:
        await conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, processed boolean NOT NULL)"
        )
        await conn.execute("INSERT INTO public.items SELECT g, true FROM generate_series(1, 100) g")
    finally:
        await conn.close()


async def reading(daemon: Daemon, admin: Any, db: str) -> dict[str, Any]:
    return {
        "t": asyncio.get_running_loop().time(),
        "counts": await daemon.counts(),
        "cpu_s": daemon.cpu_s(),
        "server_xacts": await xacts(admin, db),
        "backend_cpu": await backend_cpu_s(admin, db),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    admin_url = server_url()
    async with fresh_database(admin_url, prefix="bench_idle") as url:
        await prepare(url)
        db = url.rsplit("/", 1)[1]
        port = free_port()
        queues = ", ".join(f"q{i}: {QUEUE_LIMIT}" for i in range(QUEUES))
        text = CONFIG.format(url=url, port=port, queues=queues)
        admin = await harness_connection(admin_url)
        try:
            async with Daemon(text, port) as daemon:
                await asyncio.sleep(args.warmup_s)
                before = await reading(daemon, admin, db)
                await asyncio.sleep(args.window_s)
                after = await reading(daemon, admin, db)
                backends = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
                    " AND backend_type = 'client backend' AND application_name <> $2",
                    db,
                    HARNESS_APP,
                )
                ticks = await scheduler_jobs_in_window(url, args.window_s)
        finally:
            await admin.close()
    return rates(before, after, backends, ticks)


async def scheduler_jobs_in_window(url: str, window_s: float) -> int:
    """Scheduler jobs the cron inserted during the window (read after it)."""
    conn = await harness_connection(url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE worker LIKE '%.scheduler'"
                " AND inserted_at > now() - make_interval(secs => $1)",
                window_s + 1.0,
            )
        )
    finally:
        await conn.close()


def rates(
    before: dict[str, Any], after: dict[str, Any], backends: int, ticks: int
) -> dict[str, Any]:
    seconds = after["t"] - before["t"]
    c0, c1 = before["counts"], after["counts"]
    by = {k: v - c0["by_statement"].get(k, 0) for k, v in c1["by_statement"].items()}
    by = {k: v for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v}
    cpu = None
    if before["cpu_s"] is not None and after["cpu_s"] is not None:
        cpu = round((after["cpu_s"] - before["cpu_s"]) / seconds * 100, 2)
    pg_cpu = cpu_delta_s(before["backend_cpu"], after["backend_cpu"])
    return {
        "window_s": round(seconds, 2),
        "statements_per_s": round((c1["statements"] - c0["statements"]) / seconds, 2),
        "transactions_per_s": round((c1["transactions"] - c0["transactions"]) / seconds, 2),
        "server_transactions_per_s": round(
            (after["server_xacts"] - before["server_xacts"]) / seconds, 2
        ),
        "cpu_percent": cpu,
        "postgres_cpu_percent": round(pg_cpu / seconds * 100, 2),
        "backends": backends,
        "scheduler_runs_in_window": ticks,
        "statements_by_text": by,
    }


def markdown(runs: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    lines = [
        f"`jobd run` (real process, through the statement counter) with {QUEUES} queues and one"
        f" trigger (cron every minute), nothing to do; window {args.window_s:.0f} s after"
        f" ready + {args.warmup_s:.0f} s. jobd: {meta['jobd_source']}. Load average (1 min)"
        f" {meta['load_start']} at start, {meta['load_end']} at end.",
        "",
        "| run | statements/s | transactions/s (counted; pg_stat_database) | daemon CPU %"
        " | its Postgres backends' CPU % | backends connected | scheduler runs in window"
        " | issue 13 goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        met = (
            r["statements_per_s"] <= GOAL_STATEMENTS_S
            and r["cpu_percent"] is not None
            and r["cpu_percent"] < GOAL_CPU_PERCENT
        )
        goal = (
            f"<= {GOAL_STATEMENTS_S:.0f} statements/s and < {GOAL_CPU_PERCENT:.0f}% CPU:"
            f" {'met' if met else 'NOT met'}"
        )
        lines.append(
            f"| {i} | {r['statements_per_s']:.2f} | {r['transactions_per_s']:.2f};"
            f" {r['server_transactions_per_s']:.2f} | {r['cpu_percent']} |"
            f" {r['postgres_cpu_percent']} | {r['backends']} | {r['scheduler_runs_in_window']}"
            f" | {goal} |"
        )
    window = runs[len(runs) // 2]
    lines += [
        "",
        "Statements per second by text (run 1):" if len(runs) == 1 else "By text (median run):",
        "",
        "| per s | statement (first 90 characters) |",
        "|---|---|",
    ]
    for text, count in list(window["statements_by_text"].items())[:12]:
        lines.append(f"| {count / window['window_s']:.2f} | `{text.replace('|', '/')}` |")
    return "\n".join(lines)


async def collect_args(args: argparse.Namespace) -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    runs = []
    for i in range(args.repeats):
        run = await measure(args)
        runs.append(run)
        print(
            f"idle {i + 1}/{args.repeats}: {run['statements_per_s']:.2f} statements/s,"
            f" {run['transactions_per_s']:.2f} transactions/s"
            f" (server {run['server_transactions_per_s']:.2f}), CPU {run['cpu_percent']}%",
            flush=True,
        )
    meta = {
        "jobd_source": source.describe(),
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    data = {"args": vars(args), "meta": meta, "runs": runs}
    return {"markdown": markdown(runs, args, meta), "data": data}


async def collect(quick: bool) -> dict[str, Any]:
    argv = ["--warmup-s", "5", "--window-s", "10"] if quick else []
    return await collect_args(parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    out = asyncio.run(collect_args(parse_args(argv)))
    path = results.write_json("idle", out["data"])
    print("\n" + out["markdown"] + f"\n\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
