"""Pickup latency: enqueue-to-start p50 / p99 of single jobs, at low load (nothing else
running: the insert's notification wakes the worker) and under load (while the same
worker drains a backlog of low-priority no-op jobs). jobd and pgqueuer, each in a fresh
database, in its own runner process (bench/runners/jobd_latency.py,
bench/peers/pgqueuer_latency.py; protocol in bench/runners/latency_common.py).

Usage (repo root): .venv/bin/python -m bench latency [--quick]
"""

from __future__ import annotations

import asyncio
from typing import Any

from bench.harness import runners
from bench.harness.db import fresh_database, server_url

LIBRARIES = {
    "jobd": ("bench.runners.jobd_latency", "jobd"),
    "pgqueuer": ("bench.peers.pgqueuer_latency", "peers"),
}
TIMEOUT_S = 180.0


def settings(quick: bool) -> dict[str, Any]:
    return {"probes": 30 if quick else 100, "gap_ms": 20, "load_n": 10_000 if quick else 30_000}


async def measure(library: str, probes: int, gap_ms: float, load_n: int) -> dict[str, Any]:
    module, venv = LIBRARIES[library]
    async with fresh_database(server_url(), prefix="bench_lat") as dsn:
        options = {"dsn": dsn, "probes": probes, "gap_ms": gap_ms, "load_n": load_n}
        return await asyncio.to_thread(
            runners.run, runners.python_for(venv), module, options, TIMEOUT_S
        )


async def collect(quick: bool) -> dict[str, Any]:
    s = settings(quick)
    rows: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for library in LIBRARIES:
        for load_n in (0, s["load_n"]):
            try:
                r = await measure(library, s["probes"], s["gap_ms"], load_n)
            except runners.RunnerFailed as exc:
                failures[f"{library} load {load_n}"] = str(exc).strip().splitlines()[-1][:300]
                continue
            print(
                f"latency {library:9s} load {load_n:>6,}: p50 {r['p50_ms']:.1f} ms"
                f"  p99 {r['p99_ms']:.1f} ms",
                flush=True,
            )
            rows.append(r)
    lines = [
        f"{s['probes']} probe jobs per row, inserted one at a time {s['gap_ms']} ms apart;"
        f" under load = while the same worker drains {s['load_n']:,} no-op jobs (probes at"
        " top priority). Latency = worker start - just before the probe's insert.",
        "",
        "| library | load | p50 ms | p99 ms | max ms | backlog left when the last probe was sent |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        load = "low (idle)" if r["load_n"] == 0 else f"drain of {r['load_n']:,}"
        left = r["notes"].get("load_left_after_probes", 0) if r["load_n"] else ""
        lines.append(
            f"| {r['library']} | {load} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
            f" {r['max_ms']:.1f} | {left} |"
        )
    lines += [f"- **{k}: not measured** -- {v}" for k, v in failures.items()]
    return {
        "markdown": "\n".join(lines),
        "data": {"settings": s, "rows": rows, "failures": failures},
    }
