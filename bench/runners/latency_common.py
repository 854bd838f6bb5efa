"""What the pickup-latency runners share (stdlib + asyncpg only: the peers import it too).

A runner starts its library's worker on an empty database, optionally bulk-inserts
`--load-n` low-priority no-op jobs (the drain that makes "under load"), then sends
`--probes` probe jobs ONE AT A TIME, each its own committed insert, `--gap-ms` apart, at
the top priority. Latency of a probe = the worker starting it minus the moment just
before its insert was sent (same process, same monotonic clock): it counts the insert's
commit, the notification, the fetch and the dispatch. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

WAIT_S = 60.0  # every probe must have started this long after the last was sent


@dataclass
class LatencyArgs:
    dsn: str
    probes: int
    gap_ms: float
    load_n: int


def parse_args() -> LatencyArgs:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsn", required=True)
    p.add_argument("--probes", type=int, default=100)
    p.add_argument("--gap-ms", type=float, default=20.0)
    p.add_argument("--load-n", type=int, default=0)
    ns = p.parse_args()
    return LatencyArgs(ns.dsn, ns.probes, ns.gap_ms, ns.load_n)


@dataclass
class Probes:
    sent: dict[int, float] = field(default_factory=dict)
    started: dict[int, float] = field(default_factory=dict)

    def start(self, index: int) -> None:
        """Called by the worker when probe `index` starts."""
        self.started.setdefault(index, time.perf_counter())

    async def send_all(
        self, args: LatencyArgs, insert: Callable[[int], Awaitable[None]]
    ) -> list[float]:
        """Send the probes, wait for all to start; returns latencies in ms."""
        for i in range(args.probes):
            self.sent[i] = time.perf_counter()
            await insert(i)
            await asyncio.sleep(args.gap_ms / 1000)
        async with asyncio.timeout(WAIT_S):
            while len(self.started) < args.probes:
                await asyncio.sleep(0.002)
        return [(self.started[i] - self.sent[i]) * 1000 for i in range(args.probes)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(
    library: str, args: LatencyArgs, latencies_ms: list[float], **notes: Any
) -> dict[str, Any]:
    return {
        "library": library,
        "probes": args.probes,
        "gap_ms": args.gap_ms,
        "load_n": args.load_n,
        "p50_ms": round(percentile(latencies_ms, 0.50), 2),
        "p99_ms": round(percentile(latencies_ms, 0.99), 2),
        "max_ms": round(max(latencies_ms), 2),
        "mean_ms": round(statistics.fmean(latencies_ms), 2),
        "notes": notes,
    }


async def remaining(dsn: str, sql: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def run_main(main: Callable[[LatencyArgs], Coroutine[Any, Any, dict[str, Any]]]) -> None:
    import uvloop

    args = parse_args()
    try:
        line = uvloop.run(main(args))
    except TimeoutError:
        print(json.dumps({"error": f"probes not all started within {WAIT_S}s"}), flush=True)
        sys.exit(2)
    print(json.dumps(line), flush=True)
