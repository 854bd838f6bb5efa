"""Scheduler benchmark: rows enqueued per second by ONE trigger scheduler run, against a
hand-written `INSERT INTO jobd.jobs SELECT ... WHERE ...` (the physical limit) in the same
run, each on a fresh database.

Table `events` (id bigint primary key, kind text, handled boolean, inserted_at timestamptz)
with `--rows` rows of which `--matching` match the trigger's `where` (spread evenly over the
key range, no index but the primary key). Timed:

- **jobd**: `run_scheduler` of a trigger with `where: kind = 'hit' AND handled IS NOT TRUE`
  (default read: primary-key order, so keyset pages of `stream_batch_size` = 1000, each
  one `INSERT ... SELECT` with the NOT EXISTS probe and ON CONFLICT), the real code path.
- **jobd-single** (`--variants`): the same trigger sorted by `inserted_at`, which runs as
  ONE statement (see docs/semantics.md, "Paging").
- **raw**: one `INSERT INTO jobd.jobs (...) SELECT ... FROM events WHERE ...` building the
  same args and unique keys, with no uniqueness probe, no order and no paging.

Usage, from the repository root:

    .venv/bin/python -m bench.scheduler                       # 1,000,000 rows, 100,000 match
    .venv/bin/python -m bench.scheduler --rows 200000 --matching 20000 --repeats 1

Prints one line per measurement and the ratio raw/jobd of the medians; writes
bench/results/scheduler-<stamp>.json. Target: jobd within 1.5x of the raw statement.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.harness import results
from bench.harness.db import fresh_database, server_url, server_version
from bench.harness.stats import summarize
from jobd.config import load_config_text
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.sql.migrate import migrate
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.scheduler import run_scheduler

TARGET_RATIO = 1.5
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
    pool = await create_pool(url, min_size=1, max_size=2)
    async with pool.acquire() as conn:
        await migrate(conn, "jobd")
        await conn.execute(CREATE)
        await conn.execute(FILL, rows // matching, rows)
        await conn.execute("VACUUM ANALYZE events")
    return pool


async def measure(variant: str, rows: int, matching: int) -> dict[str, Any]:
    async with fresh_database(server_url(), "bench_sched") as url:
        pool = await _prepare(url, rows, matching)
        try:
            if variant == "raw":
                started = time.perf_counter()
                status = await pool.execute(RAW)
                elapsed_s = time.perf_counter() - started
                enqueued = int(status.rsplit(" ", 1)[-1])
                pages = 1
            else:
                sort = ", sort: [inserted_at]" if variant == "jobd-single" else ""
                spec = load_config_text(CONFIG % sort, "bench.yaml", env={})
                async with pool.acquire() as conn:
                    rt = await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
                res = spec.resources["events"]
                started = time.perf_counter()
                result = await run_scheduler(rt, res, res.triggers["process"])
                elapsed_s = time.perf_counter() - started
                enqueued, pages = result.enqueued, result.pages
        finally:
            await pool.close()
    if enqueued != matching:
        raise SystemExit(f"{variant}: enqueued {enqueued}, expected {matching}")
    return {
        "variant": variant,
        "seconds": elapsed_s,
        "rows_per_s": enqueued / elapsed_s,
        "pages": pages,
    }


async def collect(quick: bool) -> dict[str, Any]:
    """For the harness: jobd (paged), raw and jobd-single; {"markdown", "data"}."""
    rows, matching, repeats = (200_000, 20_000, 1) if quick else (1_000_000, 100_000, 2)
    variants = ["jobd", "raw", "jobd-single"]
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for repeat in range(repeats):
        for variant in variants:
            run = await measure(variant, rows, matching)
            runs[variant].append(run)
            print(
                f"scheduler [{repeat + 1}/{repeats}] {variant:12s}"
                f" {run['rows_per_s']:10,.0f} rows/s pages={run['pages']}",
                flush=True,
            )
    summary = {v: summarize([r["rows_per_s"] for r in rs]) for v, rs in runs.items()}
    raw = summary["raw"]["median"]
    lines = [
        f"Table of {rows:,} rows, {matching:,} match the trigger's `where`; {repeats} repeats"
        " (median, min-max); each measurement in a fresh database.",
        "",
        "| variant | rows enqueued/s median (min-max) | raw / variant | pages |",
        "|---|---|---|---|",
    ]
    for v, s in summary.items():
        lines.append(
            f"| {v} | {s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f}) |"
            f" {raw / s['median']:.2f}x | {runs[v][0]['pages']} |"
        )
    factor = raw / summary["jobd"]["median"]
    ok = "met" if factor <= TARGET_RATIO else "NOT met"
    lines.append(
        f"\njobd (paged, the default) = {factor:.2f}x slower than the raw statement;"
        f" target within {TARGET_RATIO}x: {ok}."
    )
    data = {
        "rows": rows,
        "matching": matching,
        "runs": runs,
        "summary": summary,
        "raw_over_jobd": factor,
    }
    return {"markdown": "\n".join(lines), "data": data}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--matching", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="jobd,raw,jobd-single")
    ns = parser.parse_args(argv)
    if ns.rows % ns.matching:
        parser.error("--rows must be a multiple of --matching")
    variants = ns.variants.split(",")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for repeat in range(ns.repeats):
        for variant in variants:  # interleaved, so drift hits every variant alike
            run = await measure(variant, ns.rows, ns.matching)
            runs[variant].append(run)
            line = f"[{repeat + 1}/{ns.repeats}] {variant:12s} {run['seconds']:7.3f}s "
            print(line + f"{run['rows_per_s']:10,.0f} rows/s  pages={run['pages']}", flush=True)
    medians = {v: statistics.median(r["rows_per_s"] for r in runs[v]) for v in variants}
    print(f"\n{ns.rows:,} rows, {ns.matching:,} matching; median rows enqueued per second:")
    for variant, value in medians.items():
        print(f"  {variant:12s} {value:10,.0f}")
    verdicts = {}
    if "raw" in medians:
        for variant in (v for v in variants if v != "raw"):
            factor = medians["raw"] / medians[variant]
            verdicts[variant] = factor
            ok = "within" if factor <= TARGET_RATIO else "OUTSIDE"
            print(f"  raw / {variant}: {factor:.2f}x ({ok} the {TARGET_RATIO}x target)")
    path = results.write_json(
        "scheduler",
        {
            "rows": ns.rows,
            "matching": ns.matching,
            "runs": runs,
            "median_rows_per_s": medians,
            "raw_over": verdicts,
            "postgres": await server_version(server_url()),
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
