"""Three engine processes on one database run 20,000 jobs while one is killed with -9:
every job completes, no job runs twice at once, the dead node's jobs are rescued within
about three heartbeats (SPEC section 2)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from tests.acceptance.engine_node import HEARTBEAT_S

NODE_SCRIPT = Path(__file__).with_name("engine_node.py")
JOBS = 20_000
NODES = 3
# Dead after 3 missed beats; the lifeline runs every beat: rescue by kill + 4 beats.
RESCUE_BOUND_S = 4 * HEARTBEAT_S + 0.5

EXECUTIONS = """
CREATE TABLE public.executions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id bigint NOT NULL, attempt int NOT NULL, node text NOT NULL,
  started_at timestamptz NOT NULL, ended_at timestamptz
)
"""

# Pairs of executions of one job whose time ranges overlap (an unfinished execution of the
# killed node counts as running until the kill).
OVERLAPS = """
SELECT count(*) FROM public.executions a JOIN public.executions b
  ON a.job_id = b.job_id AND a.id < b.id
WHERE tstzrange(a.started_at, coalesce(a.ended_at, $1))
   && tstzrange(b.started_at, coalesce(b.ended_at, $1))
"""


class Node:
    """One engine_node.py process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.node_id = ""

    @classmethod
    async def start(cls, url: str, name: str, log_dir: Path) -> Node:
        err = (log_dir / f"{name}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(NODE_SCRIPT),
            url,
            name,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
        err.close()
        return cls(proc)

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=15)
        assert line.startswith(b"READY "), line
        self.node_id = line.split()[1].decode()

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=15)


async def wait_for(check: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_cluster_survives_kill_9(database_url: str, tmp_path: Path) -> None:
    """20,000 jobs on three engine processes, one killed with -9 mid-run: all complete,
    no overlapping executions of one job, the dead node's jobs rescued in time and
    marked rescued, its node row removed; the survivors stop gracefully (exit 0)."""
    conn = await asyncpg.connect(database_url)
    nodes: list[Node] = []
    try:
        await conn.execute(EXECUTIONS)
        nodes = [await Node.start(database_url, f"node{i}", tmp_path) for i in range(NODES)]
        await asyncio.gather(*(n.ready() for n in nodes))
        await insert_jobs(conn, [JobSpec(worker="record", max_attempts=3)] * JOBS)

        leader = await conn.fetchval("SELECT node_id FROM jobd.leader")
        victim = next(n for n in nodes if n.node_id != leader)  # measure rescue, not failover

        async def victim_busy() -> bool:
            running = await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE state = 'executing' AND attempted_by = $1",
                victim.node_id,
            )
            done = await conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE state = 'completed'")
            return bool(running and done > JOBS // 10)

        await wait_for(victim_busy, timeout_s=30)
        killed_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
        os.kill(victim.proc.pid, signal.SIGKILL)
        await victim.proc.wait()
        dead_at: datetime = await conn.fetchval("SELECT clock_timestamp()")

        async def all_done() -> bool:
            left = await conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE state <> 'completed'")
            return bool(left == 0)

        await wait_for(all_done, timeout_s=120)  # a bound, not a speed target
        for node in nodes:
            if node is not victim:
                assert await node.terminate() == 0
        await check(conn, victim.node_id, killed_at, dead_at)
    finally:
        for node in nodes:
            if node.proc.returncode is None:
                node.proc.kill()
                await node.proc.wait()
        await conn.close()


async def check(conn: Any, victim: str, killed_at: datetime, dead_at: datetime) -> None:
    """The guarantees, read from the jobs and executions tables. The victim was sent
    SIGKILL at `killed_at` and had surely exited at `dead_at`."""
    assert await conn.fetchval("SELECT count(*) FROM jobd.jobs") == JOBS
    assert await conn.fetchval(OVERLAPS, dead_at) == 0
    unfinished = await conn.fetch(
        "SELECT node, job_id FROM public.executions WHERE ended_at IS NULL"
    )
    assert {row["node"] for row in unfinished} <= {victim}
    rescued = await conn.fetch(
        "SELECT id, attempted_by, (meta ->> 'rescued')::int AS times, "
        "(SELECT (e ->> 'at')::timestamptz FROM unnest(errors) e "
        " WHERE e ->> 'kind' = 'rescued' LIMIT 1) AS rescued_at "
        "FROM jobd.jobs WHERE meta ? 'rescued'"
    )
    assert rescued, "the killed node had jobs in flight; they must have been rescued"
    assert {row["job_id"] for row in unfinished} <= {row["id"] for row in rescued}
    delays_s = [(row["rescued_at"] - killed_at).total_seconds() for row in rescued]
    print(f"rescued {len(rescued)} jobs {min(delays_s):.2f}-{max(delays_s):.2f} s after kill")
    assert all(row["times"] == 1 for row in rescued)
    assert min(delays_s) > 0 and max(delays_s) <= RESCUE_BOUND_S, delays_s
    assert await conn.fetchval("SELECT count(*) FROM jobd.nodes WHERE id = $1", victim) == 0
