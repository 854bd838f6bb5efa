"""Scheduler benchmark: rows enqueued per second by ONE trigger scheduler run, against a
hand-written `INSERT INTO jobd.jobs SELECT ... WHERE ...` (the physical limit) in the same
run, each on a fresh database.

Table `events` (id bigint primary key, kind text, handled boolean, inserted_at timestamptz)
with `--rows` rows of which `--matching` match the trigger's `where` (spread evenly over the
key range, no index but the primary key). Variants:

- **jobd**: `run_scheduler` of a trigger with `where: kind = 'hit' AND handled IS NOT TRUE`
  (default read: primary-key order, so keyset pages: the first of `stream_batch_size` =
  1,000 rows, then doubling up to 16,000; each one `INSERT ... SELECT` walking the key
  index, with ON CONFLICT and no NOT EXISTS probe, as no `record_limit` needs one), the
  real code path.
- **jobd-single**: the same trigger sorted by `inserted_at`, which runs as ONE statement
  (see docs/semantics.md, "Paging").
- **jobd-limit**: the paged trigger with a `record_limit` (1,000,000, never reached), so
  each page also probes every row's unique key (NOT EXISTS) before inserting: what the
  probe costs.
- **raw**: one `INSERT INTO jobd.jobs (...) SELECT ... FROM events WHERE ...` building the
  same args and unique keys, with no uniqueness handling, no order and no paging: the
  target's reference.
- **raw-conflict**: the raw statement with `ON CONFLICT (uniq_key) ... DO NOTHING`, the
  one part of jobd's work that "one job per row" cannot do without: what it costs alone.

Timed: wall clock around the run, and the CPU time of the one Postgres backend that ran it
(read from /proc; the server must be local), which other work on a shared machine moves
less than the wall clock.

Rounds alternate: each round measures every variant once, the order rotating from round
to round, so that drift on a shared machine hits every variant alike.

Usage, from the repository root:

    .venv/bin/python -m bench.scheduler                       # 1,000,000 rows, 100,000 match
    .venv/bin/python -m bench.scheduler --rows 200000 --matching 20000 --rounds 1
    .venv/bin/python -m bench scheduler     # as recorded: 5 rounds, rewrites README section 3

Prints one line per measurement and the table of bench/README.md section 3 (medians and
ranges, and each median's ratio to the raw statement's); writes
bench/results/scheduler-<stamp>.json. Target: jobd within 1.2x of the raw statement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.harness import results
from bench.harness.db import fresh_database, server_url, server_version
from bench.harness.stats import summarize
from bench.runners.jobd_run import quiet_logs
from bench.trigger_report import summarize_fine
from jobd.config import load_config_text
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.sql.migrate import migrate
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.scheduler import run_scheduler

TARGET_RATIO = 1.2
ROUNDS = 5  # as recorded in bench/README.md
VARIANTS = ("jobd", "raw", "jobd-single", "jobd-limit", "raw-conflict")
EXTRA = {  # trigger options of each jobd variant
    "jobd": "",
    "jobd-single": ", sort: [inserted_at]",
    "jobd-limit": ", record_limit: 1000000",
}
CONFIG = """
version: 1
database: {url: "postgresql://unused"}
resources:
  events:
    table: events
    actions: {done: {update: {set: {handled: true}}}}
    triggers:
      process: {action: done, where: "kind = 'hit' AND handled IS NOT TRUE"%s}
"""
CREATE = """
CREATE TABLE events (id bigint PRIMARY KEY, kind text, handled boolean,
                     inserted_at timestamptz NOT NULL)
"""
FILL = """
INSERT INTO events
SELECT g, CASE WHEN g % $1::bigint = 0 THEN 'hit' ELSE 'miss' END, NULL,
       now() - make_interval(secs => g)
  FROM generate_series(1, $2::bigint) g
"""
ON_CONFLICT = "ON CONFLICT (uniq_key) WHERE uniq_key IS NOT NULL DO NOTHING\n"
RAW = """
INSERT INTO jobd.jobs (queue, worker, args, priority, max_attempts, uniq_key, uniq_hold)
SELECT 'events_process', 'events.process',
       '{"actor": null, "input": {}, "extra": {}}'::jsonb
         || jsonb_build_object('pk', jsonb_build_object('id', t.id), 'tenant', NULL::text),
       2, 1, 'events.process::' || jsonb_build_array(t.id)::text, '{"discarded": 3600}'
  FROM events AS t
 WHERE kind = 'hit' AND handled IS NOT TRUE
"""


async def _prepare(url: str, rows: int, matching: int) -> Any:
    # One connection: the timed statements run on one backend, whose CPU time is read.
    pool = await create_pool(url, min_size=1, max_size=1)
    async with pool.acquire() as conn:
        await migrate(conn, "jobd")
        await conn.execute(CREATE)
        await conn.execute(FILL, rows // matching, rows)
        await conn.execute("VACUUM ANALYZE events")
    return pool


def backend_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a Postgres backend (None unless the server is local)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ready(variant: str, pool: Any) -> Callable[[], Awaitable[tuple[int, int]]]:
    """Set the variant up (untimed); returns the timed part: (rows enqueued, statements)."""
    if variant.startswith("raw"):
        sql = RAW + (ON_CONFLICT if variant == "raw-conflict" else "")

        async def raw() -> tuple[int, int]:
            status = await pool.execute(sql)
            return int(status.rsplit(" ", 1)[-1]), 1

        return raw
    spec = load_config_text(CONFIG % EXTRA[variant], "bench.yaml", env={})
    async with pool.acquire() as conn:
        rt = await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
    res = spec.resources["events"]

    async def scheduler() -> tuple[int, int]:
        result = await run_scheduler(rt.deps, res, res.triggers["process"])
        return result.enqueued, result.pages

    return scheduler


async def measure(variant: str, rows: int, matching: int) -> dict[str, Any]:
    async with fresh_database(server_url(), "bench_sched") as url:
        pool = await _prepare(url, rows, matching)
        try:
            timed = await _ready(variant, pool)
            pid = await pool.fetchval("SELECT pg_backend_pid()")
            cpu_before = backend_cpu_s(pid)
            started = time.perf_counter()
            enqueued, pages = await timed()
            elapsed_s = time.perf_counter() - started
            cpu_after = backend_cpu_s(pid)
        finally:
            await pool.close()
    if enqueued != matching:
        raise SystemExit(f"{variant}: enqueued {enqueued}, expected {matching}")
    cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {
        "variant": variant,
        "seconds": elapsed_s,
        "rows_per_s": enqueued / elapsed_s,
        "backend_cpu_s": cpu_s,
        "pages": pages,
    }


async def run_rounds(
    variants: list[str], rows: int, matching: int, rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Every variant once per round, in an order that rotates from round to round."""
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for index in range(rounds):
        shift = index % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            run = await measure(variant, rows, matching)
            runs[variant].append(run)
            print(
                f"scheduler [{index + 1}/{rounds}] {variant:12s} {run['seconds']:7.3f}s"
                f" {run['rows_per_s']:10,.0f} rows/s cpu={run['backend_cpu_s']}"
                f" pages={run['pages']}",
                flush=True,
            )
    return runs


def report(runs: dict[str, list[dict[str, Any]]], rows: int, matching: int) -> dict[str, Any]:
    """The README table (medians, min-max, ratio of each median to raw's) and the data."""
    rounds = len(next(iter(runs.values())))
    seconds = {v: summarize_fine([r["seconds"] for r in rs]) for v, rs in runs.items()}
    rates = {v: summarize([r["rows_per_s"] for r in rs]) for v, rs in runs.items()}
    cpus = {v: [r["backend_cpu_s"] for r in rs] for v, rs in runs.items()}
    cpu = {v: summarize_fine(xs) for v, xs in cpus.items() if None not in xs}
    lines = [
        f"Table of {rows:,} rows, {matching:,} match the trigger's `where`; {rounds}"
        " alternating rounds (median, min-max), each measurement in a fresh database."
        " Backend CPU: user + system time of the one Postgres backend that ran the"
        " statements.",
        "",
        "| variant | seconds median (min-max) | rows enqueued/s median (min-max) |"
        " time / raw (medians) | backend CPU s median (min-max) | CPU / raw | statements |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, float] = {}
    for v in runs:
        s, r, c = seconds[v], rates[v], cpu.get(v)
        ratios[v] = _over(s, seconds.get("raw"))
        cpu_text = f"{c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f})" if c else "n/a"
        lines.append(
            f"| {v} | {s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f}) |"
            f" {r['median']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}) | {ratios[v]:.2f}x |"
            f" {cpu_text} | {_over(c, cpu.get('raw')):.2f}x | {runs[v][0]['pages']} |"
        )
    if "jobd" in ratios and "raw" in ratios:
        verdict = "met" if ratios["jobd"] <= TARGET_RATIO else "NOT met"
        lines.append(
            f"\njobd (paged, the default) takes {ratios['jobd']:.2f}x the raw statement's"
            f" time; target within {TARGET_RATIO}x: {verdict}."
        )
    data = {
        "rows": rows,
        "matching": matching,
        "rounds": rounds,
        "runs": runs,
        "seconds": seconds,
        "rows_per_s": rates,
        "summary": rates,  # rows/s by variant, as bench/harness/chart.py reads them
        "backend_cpu_s": cpu,
        "time_over_raw": ratios,
        "cpu_over_raw": {v: _over(cpu.get(v), cpu.get("raw")) for v in runs},
    }
    return {"markdown": "\n".join(lines), "data": data}


def _over(value: dict[str, float] | None, raw: dict[str, float] | None) -> float:
    """The ratio of two medians (NaN when either is missing)."""
    if not value or not raw:
        return float("nan")
    return round(value["median"] / raw["median"], 3)


async def collect(quick: bool) -> dict[str, Any]:
    """For the harness: every variant, alternating; {"markdown", "data"}."""
    rows, matching, rounds = (200_000, 20_000, 1) if quick else (1_000_000, 100_000, ROUNDS)
    runs = await run_rounds(list(VARIANTS), rows, matching, rounds)
    return report(runs, rows, matching)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--matching", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    ns = parser.parse_args(argv)
    if ns.rows % ns.matching:
        parser.error("--rows must be a multiple of --matching")
    quiet_logs()
    load = {"start": os.getloadavg()[0]}
    runs = await run_rounds(ns.variants.split(","), ns.rows, ns.matching, ns.rounds)
    load["end"] = os.getloadavg()[0]
    out = report(runs, ns.rows, ns.matching)
    print(
        f"\n{out['markdown']}\n\nload average (1 min):"
        f" {load['start']:.2f} at start, {load['end']:.2f} at end"
    )
    postgres = await server_version(server_url())
    argv = sys.argv[1:] if argv is None else argv
    payload = {**out, "postgres": postgres, "argv": argv, "load_avg_1m": load}
    path = results.write_json("scheduler", payload)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
