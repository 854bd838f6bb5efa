"""Issue 11, case 7: a synchronous Python action that hangs, against the real daemon. Sync
actions run on threads of their own per action (jobd.common.threads.DaemonThreads), so
one trigger's hung calls neither starve another trigger's sync action nor keep SIGTERM
from ending the process."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import DaemonProc
from tests.faults.edge_daemon import jobd_code, settle, start_daemon, states

pytestmark = pytest.mark.faults

# More hung calls at once than asyncio's default thread pool has threads
# (min(32, cpu_count + 4)): before the fix every sync action shared that pool.
DEFAULT_POOL_THREADS = min(32, (os.cpu_count() or 1) + 4)
HANG_LIMIT = DEFAULT_POOL_THREADS + 2
HANG_JOBS = 200
QUICK_JOBS = 100

TABLES = """
CREATE TABLE public.stuck (id int PRIMARY KEY);
CREATE TABLE public.quick (id int PRIMARY KEY, done boolean NOT NULL DEFAULT false);
"""

# `hang.timeout: 1s`: the case is a hung call under a trigger's timeout. `hang` queue
# limit: more hung calls than the old shared pool had threads. `shutdown_grace: 100ms`:
# shorter than what is left of the running hung attempts' timeout when SIGTERM comes, so
# those attempts are still running when the grace ends and must be returned. Everything
# else is a default (max_attempts 1, the quick trigger's implicit queue of 10).
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "off"}}
engine: {{shutdown_grace: 100ms}}
queues: {{hang: {hang_limit}}}
resources:
  stuck:
    table: public.stuck
    actions:
      hang: {{python: "tests.faults.edge_actions:hang_sync"}}
    triggers:
      hang: {{action: hang, scheduler_cron: false, queue: hang, timeout: 1s}}
  quick:
    table: public.quick
    actions:
      quick: {{python: "tests.faults.edge_actions:quick_sync"}}
      mark_done: {{update: {{set: {{done: true}}}}}}
    triggers:
      run: {{action: quick, where: "done IS NOT TRUE", scheduler_cron: false,
             on_success: mark_done}}
"""


def enqueue(resource: str, trigger: str, count: int) -> str:
    return (
        f"INSERT INTO public.{resource} (id) SELECT generate_series(1, {count});"
        f" SELECT jobd.run_triggers('{resource}', '{trigger}',"
        f" (SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series(1, {count}) g))"
    )


async def test_hung_sync_calls_starve_nothing_and_do_not_hold_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    """Trigger `stuck.hang` runs a sync action that sleeps 600 s, with `timeout: 1s` and a
    queue limit above asyncio's default thread pool; 200 of its jobs are enqueued and its
    calls hang. While they do, trigger `quick.run`'s 100 sync jobs all complete. The hung
    attempts time out and free their slots (more `hang` jobs end, each with a timeout
    error, than twice the queue's limit). SIGTERM while hung attempts run (half of them younger
    than 0.3 s) ends the process with exit 0 within shutdown_grace (100 ms) plus 3 s, and no
    job is left `executing`: the unfinished `hang` jobs are `available` again."""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=database_url, hang_limit=HANG_LIMIT))
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(TABLES)
        daemon = await start_daemon(config, tmp_path / "daemon.log")
        print(f"\njobd code: {await jobd_code(daemon)}")
        await daemon.ready()

        await conn.execute(enqueue("stuck", "hang", HANG_JOBS))

        async def all_hang_slots_busy() -> bool:
            return (
                await conn.fetchval(
                    "SELECT count(*) FROM jobd.jobs WHERE worker = 'stuck.hang'"
                    " AND state = 'executing'"
                )
                >= HANG_LIMIT
            )

        assert await settle(all_hang_slots_busy, 10), await states(conn)
        started = time.monotonic()
        await conn.execute(enqueue("quick", "run", QUICK_JOBS))

        async def quick_done() -> bool:
            done = await conn.fetchval("SELECT count(*) FROM public.quick WHERE done")
            return int(done) == QUICK_JOBS

        finished = await settle(quick_done, 15)
        quick_s = time.monotonic() - started
        done = await conn.fetchval("SELECT count(*) FROM public.quick WHERE done")
        print(
            f"{HANG_LIMIT} hung calls at once (default pool: {DEFAULT_POOL_THREADS} threads);"
            f" quick jobs done: {done}"
            f"/{QUICK_JOBS} after {quick_s:.2f} s; hang jobs: {await states(conn, 'stuck.hang')}"
        )
        assert finished, f"the quick trigger's sync jobs starved; see {daemon.log_path}"
        assert await states(conn, "quick.run") == {"completed": QUICK_JOBS}

        async def slots_freed() -> bool:
            ended = await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE worker = 'stuck.hang' AND state = 'discarded'"
            )
            return int(ended) > 2 * HANG_LIMIT

        assert await settle(slots_freed, 10), await states(conn, "stuck.hang")
        discarded, timeouts = await conn.fetchrow(  # one snapshot: jobs keep timing out
            "SELECT count(*), count(*) FILTER (WHERE errors[cardinality(errors)]->>'error'"
            "   LIKE '%attempt timed out after 1%'"
            "   AND errors[cardinality(errors)]->>'kind' = 'timeout')"
            " FROM jobd.jobs WHERE worker = 'stuck.hang' AND state = 'discarded'"
        )
        assert timeouts == discarded, (timeouts, discarded)

        async def young_attempts_running() -> bool:
            young = await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE worker = 'stuck.hang'"
                " AND state = 'executing' AND attempted_at > now() - interval '300 ms'"
            )
            return int(young) >= HANG_LIMIT // 2

        assert await settle(young_attempts_running, 10)
        running = await conn.fetch(
            "SELECT id, attempted_at > now() - interval '300 ms' AS young FROM jobd.jobs"
            " WHERE worker = 'stuck.hang' AND state = 'executing'"
        )

        async def exited_() -> bool:
            return not daemon.alive

        stopping = time.monotonic()
        daemon.send(signal.SIGTERM)
        exited = await settle(exited_, 10)
        stop_s = time.monotonic() - stopping
        after_stop = await states(conn)
        young = [row["id"] for row in running if row["young"]]
        ids = [row["id"] for row in running]
        returned = await conn.fetchval(
            "SELECT count(*) FROM jobd.jobs WHERE id = ANY($1) AND state = 'available'", ids
        )
        young_returned = await conn.fetchval(
            "SELECT count(*) FROM jobd.jobs WHERE id = ANY($1) AND state = 'available'"
            " AND attempt = 0",
            young,
        )
        print(
            f"{timeouts} hang attempts timed out (each freed its slot); at SIGTERM"
            f" {len(ids)} hang attempts running ({len(young)} younger than 0.3 s):"
            f" {returned} returned to available; exit {daemon.proc.returncode} after"
            f" {stop_s:.2f} s; jobs after: {after_stop}"
        )
        assert exited, "SIGTERM did not end the process within 10 s"
        assert daemon.proc.returncode == 0
        assert stop_s < 0.1 + 3
        assert "executing" not in after_stop, after_stop
        assert young_returned == len(young), (young_returned, young)
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()
