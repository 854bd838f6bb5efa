"""Issue 11, case 6: a Python action raising a BaseException that is not an Exception
(SystemExit, KeyboardInterrupt, a custom subclass), sync or async, against the real
daemon. Every exception an action raises is a failed attempt; the daemon survives it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import ITEMS_SQL, DaemonProc, add_items, poll
from tests.faults.edge_daemon import jobd_code, settle, start_daemon, states

pytestmark = pytest.mark.faults

KINDS = {"exit": "SystemExit", "interrupt": "KeyboardInterrupt", "custom": "Boom"}

BOOM_SQL = """
CREATE TABLE public.boom (
  id int PRIMARY KEY, kind text NOT NULL, sync_error text, async_error text
);
INSERT INTO public.boom (id, kind) VALUES (1, 'exit'), (2, 'interrupt'), (3, 'custom');
"""

# Defaults everywhere (max_attempts 1, no timeout, implicit queues); only the scheduler
# is off so that the test enqueues exactly the jobs it counts.
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "off"}}
resources:
  boom:
    table: public.boom
    actions:
      boom_sync: {{python: "tests.faults.edge_actions:boom_sync"}}
      boom_async: {{python: "tests.faults.edge_actions:boom_async"}}
      note_sync: {{update: {{set: {{sync_error: {{error: message}}}}}}}}
      note_async: {{update: {{set: {{async_error: {{error: message}}}}}}}}
    triggers:
      sync_handled: {{action: boom_sync, scheduler_cron: false, on_error: note_sync}}
      sync_plain: {{action: boom_sync, scheduler_cron: false}}
      async_handled: {{action: boom_async, scheduler_cron: false, on_error: note_async}}
      async_plain: {{action: boom_async, scheduler_cron: false}}
  items:
    table: public.items
    actions:
      work: {{python: "tests.faults.actions:work"}}
      mark_done: {{update: {{set: {{done: true}}}}}}
    triggers:
      process: {{action: work, where: "done IS NOT TRUE", scheduler_cron: false,
                 on_success: mark_done}}
"""

TRIGGERS = ("sync_handled", "sync_plain", "async_handled", "async_plain")
ENQUEUE = (
    "SELECT cardinality(jobd.run_triggers('boom', $1, "
    "(SELECT jsonb_agg(jsonb_build_object('id', id)) FROM public.boom)))"
)
OK_ITEMS = 50


async def test_base_exceptions_from_actions_are_failed_attempts(
    database_url: str, tmp_path: Path
) -> None:
    """SystemExit, KeyboardInterrupt and a custom BaseException subclass, raised by a sync
    action (in its thread) and by an async one, are each one failed attempt: with the
    default `max_attempts: 1` the job ends at once, `completed` with `meta.handled` and the
    row written by `on_error` when one is configured, `discarded` without it; each job's
    error has kind `error` and names the exception. Nothing stays `executing`, the daemon
    keeps running (50 jobs enqueued afterwards all complete) and SIGTERM then exits 0
    within a few seconds."""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=database_url))
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(ITEMS_SQL + BOOM_SQL)
        daemon = await start_daemon(config, tmp_path / "daemon.log")
        print(f"\njobd code: {await jobd_code(daemon)}")
        await daemon.ready()
        started = time.monotonic()
        for trigger in TRIGGERS:
            assert await conn.fetchval(ENQUEUE, trigger) == len(KINDS)

        async def boom_jobs_ended() -> bool:
            ended = await conn.fetchval(
                "SELECT count(*) FROM jobd.jobs WHERE worker LIKE 'boom.%'"
                " AND state IN ('completed', 'discarded')"
            )
            return int(ended) == len(TRIGGERS) * len(KINDS) or not daemon.alive

        ended = await settle(boom_jobs_ended, 20)
        print(f"jobs by state: {await states(conn)}; daemon alive: {daemon.alive}")
        assert ended, "some boom jobs did not end within 20 s"
        assert daemon.alive, f"the daemon exited ({daemon.proc.returncode}); see {daemon.log_path}"
        ended_s = time.monotonic() - started

        rows = await conn.fetch(
            "SELECT j.worker, b.kind, j.state::text AS state, j.meta ? 'handled' AS handled,"
            " j.errors[cardinality(j.errors)] AS error, b.sync_error, b.async_error"
            " FROM jobd.jobs j JOIN public.boom b ON b.id = (j.args->'pk'->>'id')::int"
            " WHERE j.worker LIKE 'boom.%' ORDER BY 1, 2"
        )
        for row in rows:
            last = json.loads(row["error"])["error"].strip().splitlines()[-1]
            print(f"{row['worker']:<20} {row['kind']:<9} {row['state']:<9} {last}")
        assert len(rows) == len(TRIGGERS) * len(KINDS)
        for row in rows:
            exc_name = KINDS[row["kind"]]
            assert row["error"] is not None, row
            error = json.loads(row["error"])
            assert error["kind"] == "error", row
            assert exc_name in error["error"], row
            assert "UserCodeExit" in error["error"], row
            if row["worker"].endswith("_handled"):
                assert (row["state"], row["handled"]) == ("completed", True), row
                written = row["sync_error"] if "sync_" in row["worker"] else row["async_error"]
                assert written is not None and exc_name in written, row
            else:
                assert row["state"] == "discarded", row

        added = time.monotonic()
        assert await add_items(conn, 1, OK_ITEMS) == OK_ITEMS

        async def items_done() -> bool:
            return int(await conn.fetchval("SELECT count(*) FROM public.items WHERE done")) == (
                OK_ITEMS
            )

        await poll(items_done, 20, "the later jobs completed")
        items_s = time.monotonic() - added
        assert await states(conn, "items.process") == {"completed": OK_ITEMS}
        assert "executing" not in await states(conn)

        stopping = time.monotonic()
        code = await daemon.stop(timeout_s=15)
        stop_s = time.monotonic() - stopping
        print(
            f"boom jobs ended in {ended_s:.2f} s: {await states(conn)};"
            f" {OK_ITEMS} later jobs completed in {items_s:.2f} s;"
            f" SIGTERM -> exit {code} in {stop_s:.2f} s"
        )
        assert code == 0
        assert stop_s < 5
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()
