"""`kill -9` of a real daemon under load (SPEC section 2: durable, rescued within about
three heartbeats)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import ITEMS_SQL, DaemonProc, add_items, items_config, poll

pytestmark = pytest.mark.faults

ITEMS = 3_000
HEARTBEAT_S = 1.0
# Dead after 3 missed beats; the leader's lifeline looks once per beat: kill + 4 beats.
RESCUE_BOUND_S = 4 * HEARTBEAT_S + 0.5


async def test_kill_9_of_a_daemon_loses_no_job(database_url: str, tmp_path: Path) -> None:
    """Two `jobd run` processes drain 3,000 trigger jobs; the one that is not leader is
    killed with SIGKILL while it executes jobs. Every item's job completes, exactly one
    attempt per item committed its work (a killed attempt's transaction left nothing), the
    victim's in-flight jobs were rescued once, within four heartbeats of the kill, and the
    survivor stops with exit 0."""
    config = tmp_path / "jobd.yaml"
    config.write_text(items_config(database_url, heartbeat=f"{HEARTBEAT_S:g}s"))
    conn = await asyncpg.connect(database_url)
    daemons: list[DaemonProc] = []
    try:
        await conn.execute(ITEMS_SQL)
        for i in range(2):
            daemons.append(await DaemonProc.start(config, tmp_path / f"daemon{i}.log"))
        await asyncio.gather(*(d.ready() for d in daemons))
        assert await add_items(conn, 1, ITEMS) == ITEMS
        await poll(lambda: conn.fetchval("SELECT count(*) > 0 FROM jobd.leader"), 10, "leader")
        leader = await conn.fetchval("SELECT node_id FROM jobd.leader")
        victim = next(d for d in daemons if d.node_id != leader)  # measure rescue, not failover
        survivor = next(d for d in daemons if d is not victim)

        async def victim_busy() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE attempted_by = $1 AND state = 'executing') > 0"
                    " AND count(*) FILTER (WHERE state = 'completed') > $2 FROM jobd.jobs",
                    victim.node_id,
                    ITEMS // 10,
                )
            )

        await poll(victim_busy, 30, "victim executing jobs")
        killed_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert await victim.wait() == -signal.SIGKILL

        async def all_done() -> bool:
            return bool(await conn.fetchval("SELECT bool_and(done) FROM public.items"))

        await poll(all_done, 90, "all items done")  # a bound, not a speed target
        assert survivor.alive
        assert await survivor.stop() == 0
        await check(conn, victim.node_id, killed_at)
    finally:
        for daemon in daemons:
            await daemon.kill()
        await conn.close()


async def check(conn: asyncpg.Connection, victim: str, killed_at: datetime) -> None:
    states = dict(await conn.fetch("SELECT state::text, count(*) FROM jobd.jobs GROUP BY 1"))
    assert states == {"completed": ITEMS}, states
    per_item = await conn.fetchval(
        "SELECT count(*) FROM (SELECT item_id FROM public.executions GROUP BY 1"
        " HAVING count(*) = 1) t"
    )
    assert per_item == ITEMS
    assert await conn.fetchval("SELECT count(*) FROM public.executions") == ITEMS
    rescued = await conn.fetch(
        "SELECT (meta ->> 'rescued')::int AS times,"
        " (SELECT (e ->> 'at')::timestamptz FROM unnest(errors) e"
        "  WHERE e ->> 'kind' = 'rescued' LIMIT 1) AS rescued_at"
        " FROM jobd.jobs WHERE meta ? 'rescued'"
    )
    assert rescued, "the victim had jobs in flight; they must have been rescued"
    assert all(row["times"] == 1 for row in rescued)
    delays_s = [(row["rescued_at"] - killed_at).total_seconds() for row in rescued]
    print(f"rescued {len(rescued)} jobs {min(delays_s):.2f}-{max(delays_s):.2f} s after kill")
    assert min(delays_s) > 0 and max(delays_s) <= RESCUE_BOUND_S, delays_s
    assert await conn.fetchval("SELECT count(*) FROM jobd.nodes WHERE id = $1", victim) == 0
