"""Issue 11, case 11: a job's terminal time is the clock time at the end of its attempt,
against the real daemon. A trigger job ends inside the transaction its worker opened
before the action ran (its writes and its end commit together), so `now()` there is the
start of the attempt, not its end."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import DaemonProc
from tests.faults.edge_daemon import jobd_code, settle, start_daemon, states

pytestmark = pytest.mark.faults

ROWS = 2
SLEEP_S = 2.0  # what the action (or on_error) takes: edge_actions.slow / slow_on_error

# Defaults everywhere (max_attempts 1, implicit queues); `on_success` makes the worker
# complete its job in its own transaction (the case), `on_error` does the same for a
# handled failure, and `on_error_fails_job: true` makes it discard the job there.
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "off"}}
resources:
  slow:
    table: public.slow
    actions:
      slow: {{python: "tests.faults.edge_actions:slow"}}
      fail: {{python: "tests.faults.edge_actions:fail"}}
      slow_on_error: {{python: "tests.faults.edge_actions:slow_on_error"}}
      mark_done: {{update: {{set: {{done: true}}}}}}
    triggers:
      ok: {{action: slow, where: "done IS NOT TRUE", scheduler_cron: false,
            on_success: mark_done}}
      handled: {{action: fail, scheduler_cron: false, on_error: slow_on_error}}
      fails: {{action: fail, scheduler_cron: false, on_error: slow_on_error,
               on_error_fails_job: true}}
"""

TRIGGERS = ("ok", "handled", "fails")
# Each trigger gets rows of its own: the workers lock their rows (lock_for_update), and a
# shared row would make one trigger's transaction wait for another's.
ENQUEUE = (
    "SELECT cardinality(jobd.run_triggers('slow', $1,"
    " (SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series($2::int, $3::int) g)))"
)


async def test_terminal_times_are_the_end_of_the_attempt(database_url: str, tmp_path: Path) -> None:
    """Three triggers whose jobs end in the worker's own transaction 2 s after their
    attempt began: `ok` (the action sleeps 2 s, `on_success` completes the job), `handled`
    (the action fails, `on_error` sleeps 2 s and completes the job as handled) and `fails`
    (the same with `on_error_fails_job`: discarded). For each job, `completed_at` or
    `discarded_at` minus `attempted_at` is 2 s or a little more (1.9-3.5 s), not the few
    milliseconds to the start of the transaction. (`cancelled_at` has no such path: a
    cancel is written by the engine's own short transaction.)"""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=database_url))
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(
            "CREATE TABLE public.slow (id int PRIMARY KEY, done boolean);"
            f" INSERT INTO public.slow (id) SELECT generate_series(1, {len(TRIGGERS) * ROWS})"
        )
        daemon = await start_daemon(config, tmp_path / "daemon.log")
        print(f"\njobd code: {await jobd_code(daemon)}")
        await daemon.ready()
        for i, trigger in enumerate(TRIGGERS):
            first = i * ROWS + 1
            assert await conn.fetchval(ENQUEUE, trigger, first, first + ROWS - 1) == ROWS

        async def all_ended() -> bool:
            left = await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs"
                " WHERE state NOT IN ('completed', 'discarded', 'cancelled')"
            )
            return int(left) == 0

        assert await settle(all_ended, 3 * SLEEP_S + 10), await states(conn)
        rows = await conn.fetch(
            "SELECT id, worker, state::text AS state,"
            " extract(epoch FROM coalesce(completed_at, discarded_at, cancelled_at)"
            "   - attempted_at)::float8 AS took_s"
            " FROM jobd.jobs ORDER BY worker, id"
        )
        for row in rows:
            print(
                f"job {row['id']} {row['worker']:<13} {row['state']:<9} end - attempted_at:"
                f" {row['took_s']:.3f} s"
            )
        expected = {"slow.ok": "completed", "slow.handled": "completed", "slow.fails": "discarded"}
        assert len(rows) == len(TRIGGERS) * ROWS
        for row in rows:
            assert row["state"] == expected[row["worker"]], dict(row)
            assert SLEEP_S - 0.1 <= row["took_s"] <= SLEEP_S + 1.5, dict(row)
        assert await daemon.stop() == 0
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()
