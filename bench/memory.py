"""Memory of the real daemon: `jobd run` with a generated configuration of 50 triggers on
50 small tables (one resource each, a declarative `update` action, one shared queue).

Measured from /proc/<pid>/status (VmRSS) of the `jobd run` process:

1. **idle**: after /readyz answers 200 and 2 s of quiet (median of 5 samples);
2. **after a scheduler run** over a table of 10k, 100k and 1M rows (1% match the trigger's
   `where`, so the scan reads every row and enqueues 100 / 1k / 10k jobs), read once the
   run has enqueued all its jobs: flat as rows grow means these stay close;
3. **under load**: the peak of samples taken every 50 ms while those scheduler runs and
   the resulting drain (queue `work`, limit 10) were going on.

Usage (repo root): .venv/bin/python -m bench memory [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.harness.daemon import free_port, wait_ready
from bench.harness.db import fresh_database, server_url
from bench.harness.runners import ROOT

TRIGGERS = 50
MATCH_EVERY = 100  # 1% of rows match
RUN_TIMEOUT_S = 300.0
SAMPLE_S = 0.05
JOBD = ROOT / ".venv" / "bin" / "jobd"


def sizes(quick: bool) -> list[int]:
    return [1_000, 10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]


def config_text(url: str, port: int) -> str:
    head = f"""version: 1
database: {{url: "{url}", pool_size: 10}}
log: {{level: warning, format: json}}
admin: {{listen: "127.0.0.1:{port}"}}
engine: {{poll_interval: 1s}}
queues: {{work: 10, schedulers: 2}}
resources:
"""
    body = "".join(
        f"""  t{i:02d}:
    table: public.t{i:02d}
    actions: {{done: {{update: {{set: {{processed: true}}}}}}}}
    triggers:
      process: {{action: done, where: "hit AND processed IS NOT TRUE", queue: work,
                 scheduler_queue: schedulers, scheduler_cron: false}}
"""
        for i in range(TRIGGERS)
    )
    return head + body


async def prepare(url: str, rows: list[int]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for i in range(TRIGGERS):
            await conn.execute(
                f"CREATE TABLE public.t{i:02d} (id bigint PRIMARY KEY, hit boolean NOT NULL,"
                " processed boolean NOT NULL DEFAULT false)"
            )
        for i, n in enumerate(rows):  # t00, t01, t02 get the big tables
            await conn.execute(
                f"INSERT INTO public.t{i:02d} (id, hit)"
                f" SELECT g, g % {MATCH_EVERY} = 0 FROM generate_series(1, $1::bigint) g",
                n,
            )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Sampler:
    """RSS samples every SAMPLE_S in the background; `peak_kib` since the last reset."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            await asyncio.sleep(SAMPLE_S)


async def scheduler_run(port: int, url: str, table: int, expected: int) -> float:
    """Ask the daemon's API to scan t<table> now; wait until it enqueued `expected` jobs."""
    started = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        path = f"http://127.0.0.1:{port}/api/triggers/t{table:02d}/process/run"
        async with http.post(path, json={}) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"trigger API answered {resp.status}: {await resp.text()}")
    conn = await asyncpg.connect(url)
    try:
        sql = "SELECT count(*) FROM jobd.jobs WHERE worker = $1"
        async with asyncio.timeout(RUN_TIMEOUT_S):
            while await conn.fetchval(sql, f"t{table:02d}.process") < expected:
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return time.perf_counter() - started


async def measure(quick: bool) -> dict[str, Any]:
    rows = sizes(quick)
    async with fresh_database(server_url(), prefix="bench_mem") as url:
        conn = await asyncpg.connect(url)
        try:
            from jobd.sql.migrate import migrate

            await migrate(conn, "jobd")
        finally:
            await conn.close()
        await prepare(url, rows)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "jobd.yaml"
            cfg.write_text(config_text(url, port))
            proc = subprocess.Popen(
                [str(JOBD), "run", "-c", str(cfg)],
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                return await observe(proc, port, url, rows)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def observe(
    proc: subprocess.Popen[bytes], port: int, url: str, rows: list[int]
) -> dict[str, Any]:
    await wait_ready(port, proc)
    await asyncio.sleep(2.0)
    idle = []
    for _ in range(5):
        idle.append(rss_kib(proc.pid))
        await asyncio.sleep(0.2)
    sampler = Sampler(proc.pid)
    after: list[dict[str, Any]] = []
    try:
        for table, n in enumerate(rows):
            seconds = await scheduler_run(port, url, table, n // MATCH_EVERY)
            after.append(
                {
                    "rows": n,
                    "jobs": n // MATCH_EVERY,
                    "scan_s": round(seconds, 2),
                    "rss_kib": rss_kib(proc.pid),
                }
            )
            mib = after[-1]["rss_kib"] / 1024
            print(f"memory: after scheduler over {n:>9,} rows: {mib:.1f} MiB", flush=True)
        await asyncio.sleep(1.0)  # part of the drain of the last run's jobs
    finally:
        sampler.task.cancel()
    return {
        "triggers": TRIGGERS,
        "idle_kib": statistics.median(idle),
        "load_peak_kib": sampler.peak_kib,
        "after_scheduler": after,
    }


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"`jobd run` (real process) with {data['triggers']} triggers on {data['triggers']} tables;"
        " VmRSS from /proc/<pid>/status.",
        "",
        "| state | RSS MiB |",
        "|---|---|",
        f"| idle, 50 triggers (ready + 2 s) | {mib(data['idle_kib'])} |",
    ]
    for a in data["after_scheduler"]:
        lines.append(
            f"| after a scheduler run over {a['rows']:,} rows ({a['jobs']:,} jobs,"
            f" {a['scan_s']:.1f} s) | {mib(a['rss_kib'])} |"
        )
    lines.append(
        f"| peak under load (scheduler runs + drain, 50 ms samples) |"
        f" {mib(data['load_peak_kib'])} |"
    )
    return "\n".join(lines)


async def collect(quick: bool) -> dict[str, Any]:
    data = await measure(quick)
    return {"markdown": markdown(data), "data": data}
