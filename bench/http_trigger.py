"""HTTP action benchmark: end-to-end rows/s of a trigger whose action is a webhook.

A table of N matching rows (10,000 by default) and a trigger `process` with an `http`
action to a local no-op sink and `on_success` marking each row (`processed = true`,
`remote_ref` from the response). The clock starts when the trigger's scheduler job is
enqueued (`schedule_trigger`) and stops when a separate connection sees all N rows marked
(committed): it counts the scheduler scan, N worker jobs each re-reading its row under
`FOR UPDATE`, one POST with the envelope, the update, and the job's completion.

For scale, the same run measures the physical limit of the HTTP part alone: N POSTs of
the same size through one aiohttp session at the same concurrency, no database.

The sink runs in its own process (`--serve`), so it does not share jobd's event loop.

Usage, from the repository root:

    .venv/bin/python -m bench.http_trigger                  # N=10000, concurrency 50, 3 repeats
    .venv/bin/python -m bench.http_trigger --n 2000 --repeats 1

Writes bench/results/http-<stamp>.json and prints a Markdown table (paste it into
bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
import time
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from bench.harness import results
from bench.harness.db import fresh_database, server_url, server_version
from bench.harness.stats import summarize

BENCHMARK = "http"
POLL_S = 0.02

CONFIG = """
version: 1
database: {{url: "{url}", pool_size: {pool}}}
log: {{level: warning}}
admin: {{listen: "off"}}
engine: {{poll_interval: 1s}}
queues: {{hooks: {concurrency}, schedulers: 1}}
resources:
  items:
    table: public.items
    actions:
      notify:
{action}
      mark:
        update: {{set: {{processed: true{ref}}}}}
    triggers:
      process:
        action: notify
        where: "processed IS NOT TRUE"
        scheduler_cron: false
        queue: hooks
        scheduler_queue: schedulers
        on_success: mark
        max_attempts: 3
"""


HTTP_ACTION = '        http: {{url: "{sink}/hooks/{{record.id}}", timeout: 10s}}'
PYTHON_ACTION = '        python: "bench.http_trigger:python_action"'


async def python_action(ctx: Any) -> dict[str, str]:
    """The Python-action variant's action: no work, a result for on_success's `ref`."""
    return {"ref": "py"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000, help="matching rows")
    p.add_argument("--concurrency", type=int, default=50, help="jobs (and requests) in flight")
    p.add_argument("--repeats", type=int, default=3, help="measurements")
    p.add_argument("--timeout-s", type=float, default=600.0, help="per measurement")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the sink (a separate process) ------------------------------------------------------


async def serve() -> None:
    """A no-op webhook receiver on a free loopback port; prints it, runs until stdin closes."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True, "ref": request.match_info["key"]})

    app = web.Application()
    app.router.add_post("/hooks/{key}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.http_trigger", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


# --- the measurements -------------------------------------------------------------------


async def prepare(url: str, n: int) -> None:
    from jobd.sql.migrate import migrate

    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "jobd")
        await conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, payload text NOT NULL,"
            " processed boolean NOT NULL DEFAULT false, remote_ref text)"
        )
        await conn.execute(
            "INSERT INTO public.items (id, payload)"
            " SELECT g, md5(g::text) FROM generate_series(1, $1::int) g",
            n,
        )
        await conn.execute("ANALYZE public.items")
    finally:
        await conn.close()


async def wait_marked(url: str, n: int, deadline: float) -> None:
    conn = await asyncpg.connect(url)
    try:
        query = "SELECT count(*) FROM public.items WHERE processed"
        while await conn.fetchval(query) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("rows not all marked before --timeout-s")
            await asyncio.sleep(POLL_S)
    finally:
        await conn.close()


async def measure_jobd(
    url: str, sink: str, args: argparse.Namespace, kind: str = "http"
) -> dict[str, Any]:
    """One end-to-end run in a fresh database: enqueue the scheduler, wait for N marked rows."""
    from jobd.actions.build import ActionServices
    from jobd.actions.http import HttpClient
    from jobd.config import load_config_text
    from jobd.daemon.supervisor import engine_config, pool_size
    from jobd.engine.engine import Engine
    from jobd.engine.registry import WorkerRegistry
    from jobd.sql.db import create_pool
    from jobd.triggers.runtime import TriggerRuntime

    await prepare(url, args.n)
    pool_n = args.concurrency + 5
    action = (PYTHON_ACTION if kind == "python" else HTTP_ACTION).format(sink=sink)
    ref = "" if kind == "python" else ', remote_ref: {response: "ref"}'
    text = CONFIG.format(url=url, pool=pool_n, concurrency=args.concurrency, action=action, ref=ref)
    spec = load_config_text(text, "bench-http.yaml", env={})
    pool = await create_pool(url, min_size=2, max_size=pool_size(spec))
    try:
        async with HttpClient(limit=args.concurrency * 2, limit_per_host=args.concurrency) as http:
            registry = WorkerRegistry()
            services = ActionServices(http=http, schema=spec.database.schema)
            async with pool.acquire() as conn:
                rt = await TriggerRuntime.create(spec, registry, pool, conn, services=services)
            engine = Engine(pool, engine_config(spec), registry)
            rt.attach(engine)
            await engine.start()
            await rt.start()
            try:
                started = time.perf_counter()
                await rt.enqueuer().schedule_trigger("items", "process")
                await wait_marked(url, args.n, time.monotonic() + args.timeout_s)
                seconds = time.perf_counter() - started
            finally:
                await rt.stop()
                await engine.stop()
    finally:
        await pool.close()
    return {"seconds": seconds, "rows_per_s": args.n / seconds}


async def measure_raw(sink: str, args: argparse.Namespace) -> dict[str, Any]:
    """N POSTs of a similar body at the same concurrency: the HTTP part's own limit."""
    body = json.dumps({"resource": "items", "record": {"id": 1, "payload": "x" * 32}}).encode()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(1, args.n + 1):
        queue.put_nowait(i)
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2, limit_per_host=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                key = queue.get_nowait()
                async with session.post(f"{sink}/hooks/{key}", data=body) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows_per_s": args.n / seconds}


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Run the measurements; returns {"markdown", "data"} for the harness."""
    admin = server_url()
    proc, sink = start_sink()
    runs: dict[str, list[dict[str, Any]]] = {
        "jobd trigger + python action": [],
        "jobd trigger + http": [],
        "raw aiohttp": [],
    }
    try:
        for repeat in range(1, args.repeats + 1):
            for kind in ("python", "http"):
                name = f"jobd trigger + {'python action' if kind == 'python' else 'http'}"
                async with fresh_database(admin, prefix="bench_http") as url:
                    runs[name].append(await measure_jobd(url, sink, args, kind))
            runs["raw aiohttp"].append(await measure_raw(sink, args))
            rates = ", ".join(f"{k} {v[-1]['rows_per_s']:.0f}/s" for k, v in runs.items())
            print(f"repeat {repeat}: {rates}", flush=True)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)
    summaries = {
        k: {"rows_per_s": summarize([r["rows_per_s"] for r in v])} for k, v in runs.items()
    }
    raw_med = summaries["raw aiohttp"]["rows_per_s"]["median"]
    lines = [
        f"N = {args.n:,} matching rows, concurrency {args.concurrency}, {args.repeats} repeats"
        " (median, min-max). Clock: trigger's scheduler job enqueued -> all N rows marked by"
        " on_success (committed).",
        "",
        "| measurement | rows/s median (min-max) | vs raw HTTP |",
        "|---|---|---|",
    ]
    for name, s in summaries.items():
        r = s["rows_per_s"]
        vs = f"{r['median'] / raw_med:.2f}x" if raw_med else ""
        lines.append(f"| {name} | {r['median']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}) | {vs} |")
    data = {
        "args": {k: v for k, v in vars(args).items() if k != "serve"},
        "runs": runs,
        "summaries": summaries,
    }
    return {"markdown": "\n".join(lines), "data": data}


async def main_async(args: argparse.Namespace) -> int:
    out = await collect(args)
    path = results.write_json(
        BENCHMARK, {"postgres": await server_version(server_url()), **out["data"]}
    )
    print("\n" + out["markdown"] + f"\n\nresults: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return 0
    # Warnings and errors only: console lines for every job would measure the terminal.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
