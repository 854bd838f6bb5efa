"""The trigger worker: re-read, lock, action, on_success/on_error, retries (SPEC 1.2)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from jobd.engine.context import JobContext
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import Build, jobs, run_all
from tests.integration.triggers.test_scheduler import ORDERS, config, scan

ACTIONS = '"tests.integration.triggers.actions'
ONE_ROW = ORDERS + "INSERT INTO orders (id, status) VALUES (1, 'new');"
ON_ERROR = """
      failed: {update: {set: {status: failed, note: {error: message}}}}
      note_error: {python: "tests.integration.triggers.actions:record_error"}"""


async def test_row_no_longer_matching_is_cancelled(build: Build, pool: Any) -> None:
    """A job whose row stopped matching (or was deleted) ends cancelled with reason
    trigger_no_longer_applies, and the action is not called."""
    rt = await build(
        config("        action: work\n        where: \"status = 'new'\""),
        ONE_ROW + "INSERT INTO orders (id, status) VALUES (2, 'new');",
    )
    await scan(rt)
    await pool.execute(
        "UPDATE orders SET status = 'old' WHERE id = 1; DELETE FROM orders WHERE id = 2"
    )
    counts = await run_all(rt)
    assert counts["cancelled"] == 2 and actions.CALLS == []
    for row in await jobs(pool):
        assert row["errors"][-1]["error"] == "trigger_no_longer_applies"


async def test_retries_with_backoff_until_max_attempts(build: Build, pool: Any) -> None:
    """A failing action is retried with the trigger's backoff until max_attempts; the
    attempt that succeeds completes the job."""
    rt = await build(
        config(
            "        action: work\n        max_attempts: 3\n        backoff: {fixed: 0s}\n"
            "        action_input: {fail_until: 3}"
        ),
        ONE_ROW,
    )
    await scan(rt)
    counts = await run_all(rt)
    assert (counts["retried"], counts["completed"]) == (2, 1)
    assert [c["attempt"] for c in actions.CALLS] == [1, 2, 3]
    [job] = await jobs(pool)
    assert job["state"] == "completed" and len(job["errors"]) == 2


async def test_backoff_delay_is_the_triggers(build: Build, pool: Any) -> None:
    """A failed attempt is retried after the trigger's fixed backoff."""
    rt = await build(
        config(
            "        action: work\n        max_attempts: 2\n        backoff: {fixed: 1h}\n"
            "        action_input: {fail: true}"
        ),
        ONE_ROW,
    )
    await scan(rt)
    await run_all(rt)
    [job] = await jobs(pool)
    assert job["state"] == "retryable"
    delay = await pool.fetchval("SELECT extract(epoch FROM scheduled_at - now()) FROM jobd.jobs")
    assert 3500 < delay <= 3600


async def test_timeout_fails_the_attempt(build: Build, pool: Any) -> None:
    """An attempt running past the trigger's timeout fails and goes to on_error with kind
    timeout."""
    rt = await build(
        config(
            "        action: work\n        timeout: 100ms\n        action_input: {sleep_s: 5}\n"
            "        on_error: note_error",
            actions_extra=ON_ERROR,
        ),
        ONE_ROW,
    )
    await scan(rt)
    await run_all(rt)
    assert actions.ERRORS[0]["error"]["kind"] == "timeout"
    assert "timed out" in actions.ERRORS[0]["error"]["message"]


async def test_on_success_and_action_writes_roll_back_together(build: Build, pool: Any) -> None:
    """An on_success that fails rolls back the action's own writes (through ctx.conn) and
    counts as a failed attempt."""
    rt = await build(
        config(
            "        action: work\n        on_success: bad\n        action_input: {write: true}",
            actions_extra="      bad: {python: " + ACTIONS + ':failing_on_success"}',
        ),
        ONE_ROW,
    )
    await scan(rt)
    counts = await run_all(rt)
    assert counts["discarded"] == 1
    assert await pool.fetchval("SELECT note FROM orders WHERE id = 1") is None


async def test_on_success_rolled_back_when_completion_fence_fails(build: Build, pool: Any) -> None:
    """When the job's completion fails (claim lost: the job was rescued meanwhile), the
    action's writes and on_success roll back."""
    rt = await build(
        config(
            "        action: work\n        on_success: done\n        action_input: {write: true}"
        ),
        ONE_ROW,
    )
    await scan(rt)
    assert len(await jobs(pool)) == 1
    await pool.execute(
        "UPDATE jobd.jobs SET state = 'executing', attempt = 1, attempted_by = 'other-node'"
    )
    from jobd.engine.producer import job_from_row

    row = await pool.fetchrow(
        "SELECT id, queue, worker, args, meta, tags, attempt, max_attempts, priority,"
        " inserted_at, scheduled_at, attempted_at, errors FROM jobd.jobs"
    )
    job = job_from_row(row, "this-node")
    ctx = JobContext(job, "this-node", pool)  # not the node that holds the claim
    worker = rt.registry.get("orders.process")
    assert worker is not None
    with pytest.raises(Exception, match="claim lost"):
        await worker.fn(job, ctx)
    assert tuple(await pool.fetchrow("SELECT note, processed FROM orders")) == (None, None)
    assert (await jobs(pool))[0]["state"] == "executing"


async def test_on_error_gets_the_error_and_completes(build: Build, pool: Any) -> None:
    """After the last failed attempt on_error runs with {error: message}; its writes and the
    job's completion commit together."""
    rt = await build(
        config(
            "        action: work\n        action_input: {fail: true}\n        on_error: failed",
            actions_extra=ON_ERROR,
        ),
        ONE_ROW,
    )
    await scan(rt)
    counts = await run_all(rt)
    assert counts == {**counts, "completed": 1, "discarded": 0}
    row = await pool.fetchrow("SELECT status, note FROM orders")
    assert row["status"] == "failed" and "boom on attempt 1" in row["note"]
    assert (await jobs(pool))[0]["state"] == "completed"


async def test_on_error_fails_job_discards(build: Build, pool: Any) -> None:
    """With on_error_fails_job the job is discarded in on_error's own transaction, with the
    final error kept on the job; a PermanentFailure skips the remaining attempts; on_error
    sees kind and status."""
    rt = await build(
        config(
            "        action: work\n        max_attempts: 5\n"
            "        action_input: {permanent: true}\n"
            "        on_error: note_error\n        on_error_fails_job: true",
            actions_extra=ON_ERROR,
        ),
        ONE_ROW,
    )
    await scan(rt)
    counts = await run_all(rt)
    assert counts["discarded"] == 1 and len(actions.CALLS) == 1
    assert actions.ERRORS[0]["error"] == {
        "message": "gone for good",
        "kind": "http",
        "status": 410,
        "attempt": 1,
    }
    job = (await jobs(pool))[0]
    assert job["state"] == "discarded"
    assert [e["error"] for e in job["errors"]] == ["gone for good"]


async def test_lock_for_update_holds_the_row(build: Build, pool: Any) -> None:
    """While the action runs the row is locked FOR UPDATE (a NOWAIT lock fails); with
    lock_for_update false it is not."""
    for locked in (True, False):
        actions.reset()
        await pool.execute("DROP TABLE IF EXISTS orders; TRUNCATE jobd.jobs")
        rt = await build(
            config(
                f"        action: work\n        lock_for_update: {str(locked).lower()}\n"
                "        action_input: {gate: true}"
            ),
            ONE_ROW,
        )
        await scan(rt)
        running = asyncio.create_task(run_all(rt))
        await asyncio.wait_for(actions.STARTED.wait(), 10)
        async with pool.acquire() as conn, conn.transaction():
            if locked:
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await conn.execute("SELECT 1 FROM orders WHERE id = 1 FOR UPDATE NOWAIT")
            else:
                await conn.execute("SELECT 1 FROM orders WHERE id = 1 FOR UPDATE NOWAIT")
        actions.GATE.set()
        await running


async def test_log_flags(build: Build, pool: Any) -> None:
    """log_errors / log_final_error control the trigger's error lines; debug adds debug
    lines."""
    rt = await build(
        config(
            "        action: work\n        max_attempts: 2\n        backoff: {fixed: 0s}\n"
            "        action_input: {fail: true}\n        debug: true"
        ).replace(
            "    triggers:\n",
            "    triggers:\n      quiet: {action: work, max_attempts: 2,"
            " backoff: {fixed: 0s}, action_input: {fail: true}, log_errors: false,"
            " log_final_error: false}\n",
        ),
        ONE_ROW,
    )
    with capture_logs() as logs:
        await scan(rt)
        await scan(rt, trigger="quiet")
        await run_all(rt)

    def events(trigger: str) -> list[str]:
        return [e["event"] for e in logs if e.get("trigger") == trigger]

    assert events("process").count("trigger.attempt_failed") == 1
    assert events("process").count("trigger.failed") == 1
    assert "trigger.start" in events("process")
    assert "trigger.attempt_failed" not in events("quiet")
    assert "trigger.failed" not in events("quiet") and "trigger.start" not in events("quiet")
    assert any(e["event"] == "scheduler.run" and e["scanned"] == 1 for e in logs)


async def test_actor_and_default_actor(build: Build, pool: Any) -> None:
    """A programmatic run's actor is stored (per store fields) and looked up; a job without
    one gets default_actor."""
    rt = await build(
        config(
            "        action: work\n        default_actor: {id: 0, role: system}\n"
            "        actor_persister: {store: [id]}"
        ),
        ORDERS + "INSERT INTO orders (id) VALUES (1), (2);",
    )
    assert await rt.enqueuer().run_trigger(
        "orders", "process", {"id": 1}, actor={"id": 7, "secret": "x"}
    )
    assert (
        await rt.enqueuer().run_trigger("orders", "process", {"id": 1}) is None
    )  # already waiting
    await rt.enqueuer().run_trigger("orders", "process", {"id": 2})
    await run_all(rt)
    actors = {c["pk"]["id"]: c["actor"] for c in actions.CALLS}
    assert actors == {1: {"id": 7}, 2: {"id": 0}}


async def test_worker_read_filters_and_columns(build: Build, pool: Any) -> None:
    """worker_read applies its own where on the re-read (a row failing it is cancelled) and
    limits the record to its columns plus the primary key; a sync entrypoint runs too."""
    rt = await build(
        config(
            "        action: work\n        worker_read: recent",
            resource_extra='    reads:\n      recent: {where: "note IS NULL", columns: [status]}',
            actions_extra="      sync: {python: " + ACTIONS + ':record_sync"}',
        ).replace("    triggers:\n", "    triggers:\n      plain: {action: sync}\n"),
        ORDERS + "INSERT INTO orders (id, status, note) VALUES (1, 'a', NULL), (2, 'b', 'x');",
    )
    assert (await scan(rt)).enqueued == 2  # the scan uses the default read
    assert (await scan(rt, trigger="plain")).enqueued == 2
    counts = await run_all(rt)
    assert (counts["completed"], counts["cancelled"]) == (3, 1)
    async_calls = [c for c in actions.CALLS if not c.get("sync")]
    assert [c["record"] for c in async_calls] == [{"id": 1, "status": "a"}]
    assert sorted(c["pk"]["id"] for c in actions.CALLS if c.get("sync")) == [1, 2]
