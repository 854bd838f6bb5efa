"""Scaling: drain rate of N no-op jobs with 1, 2 and 3 jobd engine processes on ONE
database (each process: bench/runners/jobd_node.py, queue limit 50, pool of 10).

Per measurement, in a fresh database: the k processes start and report READY (start-up
not timed), then N jobs are inserted in one statement with a notification; the clock runs
from that insert until a separate connection sees all N `completed` (polling every 20 ms).
The machine has 2 cores shared by Postgres and the workers: more processes can only help
while Postgres and Python are not already using both.

Usage (repo root): .venv/bin/python -m bench scaling [--quick]
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import asyncpg

from bench.harness.db import fresh_database, server_url
from bench.harness.runners import JOBD_PYTHON, ROOT
from bench.harness.stats import summarize

NODES = (1, 2, 3)
POLL_S = 0.02
TIMEOUT_S = 300.0


def settings(quick: bool) -> dict[str, int]:
    return {"n": 5_000 if quick else 20_000, "repeats": 1 if quick else 3}


async def measure(k: int, n: int) -> float:
    from jobd.engine.insert import insert_jobs
    from jobd.engine.jobs import JobSpec
    from jobd.sql.migrate import migrate

    async with fresh_database(server_url(), prefix="bench_scale") as url:
        conn = await asyncpg.connect(url)
        procs: list[subprocess.Popen[str]] = []
        try:
            await migrate(conn, "jobd")
            for _ in range(k):
                procs.append(
                    subprocess.Popen(
                        [str(JOBD_PYTHON), "-m", "bench.runners.jobd_node", "--dsn", url],
                        cwd=ROOT,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                )
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.to_thread(proc.stdout.readline)
                if line.strip() != "READY":
                    raise RuntimeError(f"engine node did not start: {line!r}")
            started = time.perf_counter()
            await insert_jobs(conn, [JobSpec(worker="noop")] * n)
            sql = "SELECT count(*) FROM jobd.jobs WHERE state = 'completed'"
            async with asyncio.timeout(TIMEOUT_S):
                while await conn.fetchval(sql) < n:
                    await asyncio.sleep(POLL_S)
            return time.perf_counter() - started
        finally:
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.close()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            await conn.close()


async def collect(quick: bool) -> dict[str, Any]:
    s = settings(quick)
    runs: dict[int, list[float]] = {k: [] for k in NODES}
    for repeat in range(s["repeats"]):
        for k in NODES:
            seconds = await measure(k, s["n"])
            runs[k].append(s["n"] / seconds)
            print(
                f"scaling [{repeat + 1}/{s['repeats']}] {k} process(es): {runs[k][-1]:,.0f} jobs/s",
                flush=True,
            )
    summary = {k: summarize(v) for k, v in runs.items()}
    base = summary[1]["median"]
    lines = [
        f"N = {s['n']:,} no-op jobs, {s['repeats']} repeats (median, min-max);"
        " each process: one Engine, queue limit 50, pool of 10.",
        "",
        "| engine processes | drain jobs/s median (min-max) | vs 1 process |",
        "|---|---|---|",
    ]
    for k, v in summary.items():
        lines.append(
            f"| {k} | {v['median']:,.0f} ({v['min']:,.0f}-{v['max']:,.0f}) |"
            f" {v['median'] / base:.2f}x |"
        )
    return {"markdown": "\n".join(lines), "data": {"settings": s, "runs": runs, "summary": summary}}
