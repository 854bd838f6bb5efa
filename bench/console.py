"""The web console over a million jobs: how long each page takes to answer.

ONE real `jobd run` process (bench/harness/daemon.py, not counting statements) on a fresh
database holding 1,000,000 jobs spread over the last 7 days (as a busy daemon's table
holds them with a week's retention): 96% completed, 2% discarded (each with an error and
a traceback), 1% cancelled, 10,000 of the newest 20,000 (the last 3.4 hours) waiting
(available, scheduled or retryable) in paused queues, so nothing changes while the pages
are measured, the others of those hours ended (about 3,000 an hour: what the overview
and the triggers page count); 80% of them jobs of `orders.process` (a trigger over a
table of 1,000,000 rows), 20% of `payments.charge`. The table is analyzed first, as
autovacuum would have.

A client signs in with the admin token (a session cookie), then asks each page
`--requests` times one after the other after 3 warm-up requests, and records the wall
time of each answer (request sent to body read, over loopback). Issue 16's target: every
page under 100 ms at the median.

Usage (repo root): .venv/bin/python -m bench console [--quick]   (or python -m bench.console)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

import aiohttp

from bench.harness import results, source
from bench.harness.daemon import Daemon, free_port
from bench.harness.db import connect, fresh_database, server_url

TARGET_MS = 100.0
TOKEN = "bench-console-token"

CONFIG = """version: 1
database: {{url: "{url}"}}
log: {{level: warning, format: json}}
admin: {{listen: "127.0.0.1:{port}", token: "{token}"}}
engine: {{retention: {{completed: 30d, cancelled: 30d, discarded: 30d}}}}
queues: {{orders: 10, payments: 5}}
resources:
  orders:
    table: public.orders
    actions:
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process: {{action: done, where: "status = 'new'", queue: orders, scheduler_cron: false}}
  payments:
    table: public.payments
    actions:
      paid: {{update: {{set: {{state: paid}}}}}}
    triggers:
      charge: {{action: paid, where: "state = 'due'", queue: payments, scheduler_cron: false}}
"""

# One million jobs over seven days, ids in time order. g: 1..N.
JOBS = """
INSERT INTO jobd.jobs (state, queue, worker, args, errors, attempt, max_attempts,
                       inserted_at, scheduled_at, attempted_at, attempted_by,
                       completed_at, discarded_at, cancelled_at, uniq_key)
SELECT s.state::jobd.job_state,
       CASE WHEN s.orders THEN 'orders' ELSE 'payments' END,
       CASE WHEN s.orders THEN 'orders.process' ELSE 'payments.charge' END,
       jsonb_build_object('pk', jsonb_build_object('id', s.row_id), 'tenant', NULL,
                          'actor', NULL, 'input', '{}'::jsonb, 'extra', '{}'::jsonb),
       CASE WHEN s.state IN ('discarded', 'retryable') THEN ARRAY[jsonb_build_object(
         'at', s.t + interval '1 second', 'attempt', 1, 'kind', 'error',
         'error', 'Traceback (most recent call last):' || E'\\n' ||
                  '  File "app/payments.py", line 12, in charge' || E'\\n' ||
                  'RuntimeError: payment ' || s.row_id || ' refused: card declined')]
            ELSE '{}'::jsonb[] END,
       CASE WHEN s.state IN ('available', 'scheduled') THEN 0 ELSE 1 END, 3,
       s.t, s.t, CASE WHEN s.state IN ('available', 'scheduled') THEN NULL
                      ELSE s.t + interval '1 second' END,
       CASE WHEN s.state IN ('available', 'scheduled') THEN NULL ELSE 'bench-node' END,
       CASE WHEN s.state = 'completed' THEN s.t + interval '2 seconds' END,
       CASE WHEN s.state = 'discarded' THEN s.t + interval '2 seconds' END,
       CASE WHEN s.state = 'cancelled' THEN s.t + interval '2 seconds' END,
       CASE WHEN s.state IN ('available', 'scheduled', 'retryable')
            THEN (CASE WHEN s.orders THEN 'orders.process' ELSE 'payments.charge' END)
                 || '::[' || s.row_id || ']' END
  FROM (SELECT g, g % 5 <> 0 AS orders, g AS row_id,
               now() - make_interval(secs => ($1 - g) * 604800.0 / $1) - interval '5 seconds'
                 AS t,
               CASE WHEN g > $1 - 20000 AND g % 2 = 0
                    THEN (ARRAY['available', 'scheduled', 'retryable'])[1 + g / 2 % 3]
                    WHEN g % 50 = 7 THEN 'discarded'
                    WHEN g % 100 = 13 THEN 'cancelled'
                    ELSE 'completed' END AS state
          FROM generate_series(1, $1) AS g) AS s
"""

PAGES = [
    ("overview", "/console/"),
    ("jobs, newest", "/console/jobs"),
    ("jobs, a page in the middle (keyset)", "/console/jobs?before={middle}"),
    ("jobs, state discarded", "/console/jobs?state=discarded"),
    ("jobs, queue payments, state retryable", "/console/jobs?queue=payments&state=retryable"),
    ("jobs, trigger payments.charge", "/console/jobs?worker=payments.charge"),
    ("jobs, tenant acme (none match)", "/console/jobs?tenant=acme"),
    ("jobs, error text", "/console/jobs?error=card+declined"),
    ("jobs, row key id=123456", "/console/jobs?pk=id%3D123456"),
    ("job detail (discarded, with traceback)", "/console/jobs/{discarded}"),
    ("triggers and schedules", "/console/triggers"),
    ("trigger detail with its SQL", "/console/triggers/orders/process"),
    ("row view: orders 123456", "/console/rows?resource=orders&pk=123456"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=1_000_000, help="rows in jobd.jobs")
    p.add_argument("--requests", type=int, default=30, help="measured requests per page")
    return p.parse_args(argv)


async def prepare(url: str, jobs: int) -> dict[str, int]:
    from jobd.sql.migrate import migrate

    conn = await connect(url)
    try:
        await migrate(conn, "jobd")
        await conn.execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, status text NOT NULL);"
            "CREATE TABLE public.payments (id int PRIMARY KEY, state text NOT NULL);"
            "INSERT INTO jobd.queues (name, paused) VALUES ('orders', true), ('payments', true)"
        )
        await conn.execute(
            "INSERT INTO public.orders SELECT g, 'done' FROM generate_series(1, $1) g", jobs
        )
        await conn.execute(
            "INSERT INTO public.payments SELECT g, 'paid' FROM generate_series(1, $1) g",
            jobs // 5,
        )
        started = time.monotonic()
        await conn.execute(JOBS, jobs)
        print(f"console: {jobs} jobs inserted in {time.monotonic() - started:.1f}s", flush=True)
        await conn.execute("VACUUM ANALYZE jobd.jobs")
        await conn.execute("ANALYZE public.orders")
        discarded = await conn.fetchval(
            "SELECT max(id) FROM jobd.jobs WHERE state = 'discarded' AND id < $1", jobs // 2
        )
        return {"middle": jobs // 2, "discarded": int(discarded)}
    finally:
        await conn.close()


async def time_page(http: aiohttp.ClientSession, url: str, requests: int) -> dict[str, Any]:
    times_ms: list[float] = []
    status = 0
    for i in range(3 + requests):
        started = time.perf_counter()
        async with http.get(url, allow_redirects=False) as response:
            body = await response.read()
            status = response.status
        if i >= 3:
            times_ms.append((time.perf_counter() - started) * 1000)
    if status != 200:
        raise RuntimeError(f"{url}: {status} {body[:300]!r}")
    times_ms.sort()
    return {
        "median_ms": round(statistics.median(times_ms), 1),
        "p90_ms": round(times_ms[int(len(times_ms) * 0.9) - 1], 1),
        "max_ms": round(times_ms[-1], 1),
        "bytes": len(body),
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    async with fresh_database(server_url(), prefix="bench_console") as url:
        values = await prepare(url, args.jobs)
        port = free_port()
        text = CONFIG.format(url=url, port=port, token=TOKEN)
        async with Daemon(text, port, counting=False) as daemon:
            base = f"http://127.0.0.1:{port}"
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(
                    base + "/console/login",
                    data={"token": TOKEN, "next": "/console/"},
                    headers={"Origin": base},
                    allow_redirects=False,
                ) as response:
                    if response.status != 303:
                        raise RuntimeError(f"sign-in: {response.status}\n{daemon.log_tail()}")
                pages = {}
                for name, path in PAGES:
                    pages[name] = await time_page(http, base + path.format(**values), args.requests)
                    print(f"console: {name}: {pages[name]}", flush=True)
    return {"jobs": args.jobs, "requests": args.requests, "pages": pages}


def markdown(run: dict[str, Any], meta: dict[str, Any]) -> str:
    pages = run["pages"]
    over = [name for name, p in pages.items() if p["median_ms"] >= TARGET_MS]
    lines = [
        f"`jobd run` (real process) over {run['jobs']:,} jobs (7 days; 96% completed, 2%"
        f" discarded with a traceback, 1% cancelled, 10,000 of the last 3.4 hours' waiting in"
        f" paused queues); a"
        f" signed-in client asks each page {run['requests']} times after 3 warm-ups, one"
        f" request at a time over loopback. jobd: {meta['jobd_source']}. Load average"
        f" (1 min) {meta['load_start']} at start, {meta['load_end']} at end.",
        "",
        "| page | median ms | p90 ms | max ms | KiB | under 100 ms at the median |",
        "|---|---|---|---|---|---|",
    ]
    for name, p in pages.items():
        ok = "yes" if p["median_ms"] < TARGET_MS else "**no**"
        lines.append(
            f"| {name} | {p['median_ms']} | {p['p90_ms']} | {p['max_ms']} |"
            f" {p['bytes'] / 1024:.0f} | {ok} |"
        )
    verdict = "every page met it" if not over else f"not met by: {', '.join(over)}"
    lines += ["", f"Issue 16's target (< {TARGET_MS:.0f} ms median): {verdict}."]
    return "\n".join(lines)


async def collect_args(args: argparse.Namespace) -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    run = await measure(args)
    meta = {
        "jobd_source": source.describe(),
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    return {"markdown": markdown(run, meta), "data": {"args": vars(args), "meta": meta, **run}}


async def collect(quick: bool) -> dict[str, Any]:
    argv = ["--jobs", "100000", "--requests", "10"] if quick else []
    return await collect_args(parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    out = asyncio.run(collect_args(parse_args(argv)))
    path = results.write_json("console", out["data"])
    print("\n" + out["markdown"] + f"\n\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
