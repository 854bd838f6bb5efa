"""The raw HTTP loop the trigger benchmark compares jobd's HTTP actions with: N POSTs to
the sink through ONE aiohttp session at the same concurrency, no database, on uvloop.

Each request carries a body shaped like jobd's default envelope (built and JSON-encoded
per request, as jobd does) and the same headers (`Content-Type`, `Idempotency-Key`,
`User-Agent`); the response is read and decoded. The connector's limits are those of
jobd's HTTP client (`limit_per_host` = concurrency). Prints one JSON line.

Usage (repo root): .venv/bin/python -m bench.runners.raw_http --url http://127.0.0.1:PORT/hooks
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime

import aiohttp


def envelope(key: int, now: str) -> dict[str, object]:
    record = {"id": key, "payload": f"{key:032x}", "processed": False, "remote_ref": None}
    return {
        "resource": "items",
        "trigger": "process",
        "action": "notify",
        "primary_key": {"id": key},
        "record": record,
        "tenant": None,
        "actor": None,
        "input": {},
        "job": {"id": key, "attempt": 1, "max_attempts": 1, "queue": "items", "inserted_at": now},
    }


async def run(url: str, n: int, concurrency: int) -> float:
    keys = iter(range(1, n + 1))
    now = datetime.now(UTC).isoformat()
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for key in keys:
                body = json.dumps(envelope(key, now)).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(key),
                    "User-Agent": "bench-raw/1",
                }
                async with session.post(f"{url}/{key}", data=body, headers=headers) as resp:
                    resp.raise_for_status()
                    await resp.json()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def main() -> None:
    import uvloop

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="the sink's hook URL prefix")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=20)
    ns = p.parse_args()
    seconds = uvloop.run(run(ns.url, ns.n, ns.concurrency))
    line = {"n": ns.n, "seconds": seconds, "rows_per_s": round(ns.n / seconds, 1)}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
