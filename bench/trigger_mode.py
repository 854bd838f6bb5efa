"""Is `action_in_transaction: false` there? (bench/trigger_path.py asks before its rounds.)

It is when its configuration passes `jobd check` and, in a check run whose HTTP actions
wait 2 s on the sink (`/slow/`), nothing is held while they wait: none of their rows is
locked (`SELECT ... FOR UPDATE NOWAIT` from the harness succeeds) and no backend of the
daemon sits idle in a transaction holding an xid. Otherwise the variant is reported as
not measured, with the reason: the config refused, or what was held.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from typing import Any

import aiohttp
import asyncpg

from bench.harness import runners, source
from bench.harness.daemon import Daemon, DaemonFailed, free_port
from bench.harness.db import fresh_database, server_url
from bench.harness.pgstats import ActivitySampler, harness_connection
from bench.trigger_setup import HTTP_NO_TXN, Poller, config_text, dbname_of, prepare

CHECK_ROWS = 40  # rows of the check run
CHECK_TIMEOUT_S = 60.0


def jobd_check(text: str) -> tuple[int, str]:
    """`jobd check` (no database) of a configuration: exit status and its output."""
    with tempfile.TemporaryDirectory(prefix="jobd-bench-") as tmp:
        path = os.path.join(tmp, "jobd.yaml")
        with open(path, "w") as f:
            f.write(text)
        done = subprocess.run(
            [str(runners.JOBD_PYTHON), "-m", "jobd", "check", "-c", path],
            cwd=source.import_root(),
            env=source.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    return done.returncode, (done.stderr or done.stdout).strip()


async def no_txn_mode_missing(args: argparse.Namespace, sink: str) -> tuple[str | None, Any]:
    """None when `action_in_transaction: false` is accepted and holds nothing while the
    actions run; otherwise the reason (the config refused, or what was held)."""
    port = free_port()
    url_hint = "postgresql://bench@127.0.0.1:5432/check"
    code, out = jobd_check(config_text(HTTP_NO_TXN, url_hint, port, args.concurrency, sink, "slow"))
    if code != 0:
        first = out.splitlines()[0] if out else f"exit {code}"
        return f"the config is refused (`jobd check` exit {code}): {first}", {"check": out}
    admin_url = server_url()
    async with fresh_database(admin_url, prefix="bench_tp_check") as url:
        await prepare(url, CHECK_ROWS)
        text = config_text(HTTP_NO_TXN, url, port, args.concurrency, sink, "slow")
        async with Daemon(text, port, counting=False) as daemon:
            await daemon.api("/api/triggers/items/process/run", {})
            seen = await held_while_in_flight(admin_url, url, sink)
            poller = await Poller.open(url)
            try:
                await poller.wait_marked(time.monotonic() + CHECK_TIMEOUT_S)
            finally:
                await poller.conn.close()
    if seen["rows_locked"] or seen["in_transaction_backends"]:
        return (
            "`action_in_transaction: false` is accepted but not in effect: while"
            f" {seen['in_flight']} HTTP actions waited on the sink,"
            f" {seen['in_transaction_backends']} daemon backends were in a transaction"
            f" ({seen['held_xid_backends']} idle in one holding row locks) and their rows"
            f" were {'locked' if seen['rows_locked'] else 'free'}"
        ), seen
    return None, seen


async def in_flight(sink: str, wait_s: float) -> list[str]:
    """The keys of the slow requests the sink is answering (waiting up to `wait_s` for two)."""
    keys: list[str] = []
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + wait_s
        while True:
            async with http.get(f"{sink}/inflight") as resp:
                keys = await resp.json()
            if len(keys) >= 2 or time.monotonic() > deadline:
                return keys
            await asyncio.sleep(0.05)


async def held_while_in_flight(admin_url: str, url: str, sink: str) -> dict[str, Any]:
    """While slow actions wait on the sink: the daemon's backends in a transaction, and idle
    in one holding an xid (means of samples over 0.6 s), then whether the rows of the
    actions still in flight are locked."""
    if not await in_flight(sink, 20):
        raise DaemonFailed("no action reached the sink within 20 s")
    sampler = ActivitySampler(admin_url, dbname_of(url), interval_s=0.1)
    await sampler.start()
    await asyncio.sleep(0.6)
    activity = await sampler.stop()
    keys = await in_flight(sink, 0)  # the sink answers after 2 s: these are still waiting
    conn = await harness_connection(url)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT id FROM public.items WHERE id = ANY($1::bigint[]) FOR UPDATE NOWAIT",
                [int(k) for k in keys],
            )
        locked = False
    except asyncpg.LockNotAvailableError:
        locked = True
    finally:
        await conn.close()
    return {
        "in_flight": len(keys),
        "rows_locked": locked,
        "in_transaction_backends": round(activity["mean"].get("in_transaction", 0)),
        "held_xid_backends": round(activity["mean"].get("idle_in_transaction_holding_xid", 0)),
        "activity": activity,
    }
