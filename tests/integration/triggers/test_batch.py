"""A trigger's jobs run as batches (issue 13): the jobs of one fetch share one
transaction, one re-read and one completion, while each job keeps its own outcome; and
`action_in_transaction: false` holds nothing while the action runs."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from jobd.config import load_config_text
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import init_connection
from jobd.triggers.runtime import TriggerRuntime
from tests.integration.engine.conftest import eventually
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import HEADER, Build, jobs, run_all
from tests.integration.triggers.test_scheduler import ORDERS, config, scan

ROWS = ORDERS + "INSERT INTO orders (id, status) SELECT g, 'new' FROM generate_series(1, 6) g;"
MARK_RANK = '      mark_rank: {update: {set: {processed: true, rank: {sql: "10 / (id - 2)"}}}}'


async def states(pool: Any) -> dict[int, str]:
    return {row["args"]["pk"]["id"]: row["state"] for row in await jobs(pool)}


async def test_the_jobs_of_a_fetch_commit_in_one_transaction(database_url: str, pool: Any) -> None:
    """Proves six jobs of one fetch run as one batch: one transaction (one BEGIN, one
    COMMIT), one fencing re-read, one on_success statement for the six rows, one
    completion; every row's on_success and every job's completion committed."""
    sent: list[str] = []

    async def init(conn: Any) -> None:
        await init_connection(conn)
        conn.add_query_logger(lambda logged: sent.append(logged.query))

    await pool.execute(ROWS)
    spec = load_config_text(HEADER + config("        action: work\n        on_success: done"))
    logged = await asyncpg.create_pool(database_url, min_size=1, max_size=4, init=init)
    try:
        async with logged.acquire() as conn:
            rt = await TriggerRuntime.create(spec, WorkerRegistry(), logged, conn)
        await scan(rt)
        sent.clear()
        counts = await run_all(rt)
    finally:
        await logged.close()
    assert counts["completed"] == 6 and len(actions.CALLS) == 6
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE processed") == 6

    def count(fragment: str) -> int:
        return sum(fragment in query for query in sent)

    assert count("BEGIN") == count("COMMIT") == 1
    assert count("jobd_fenced") == 1  # batch_read
    assert count("jobd_item") == 1  # action_update_many
    assert count("FROM a\nWHERE j.id = a.id") == 1  # ack_completed (ack_and_fetch: FROM a\n  WHERE)


async def test_a_failed_job_rolls_back_alone(build: Build, pool: Any) -> None:
    """Proves a job whose action fails after writing through ctx.conn loses its own writes
    (its savepoint), is retried, while the batch's other jobs commit their writes and
    their on_success, and complete."""
    rt = await build(
        config(
            "        action: work\n        on_success: done\n        max_attempts: 2\n"
            "        backoff: {fixed: 1h}\n        action_input: {write: true, fail_on: [3]}"
        ),
        ROWS,
    )
    await scan(rt)
    await run_all(rt)
    assert await states(pool) == {
        1: "completed",
        2: "completed",
        3: "retryable",
        4: "completed",
        5: "completed",
        6: "completed",
    }
    rows = {r["id"]: (r["note"], r["processed"]) for r in await pool.fetch("SELECT * FROM orders")}
    assert rows.pop(3) == (None, None)
    assert set(rows.values()) == {("written", True)}


@pytest.mark.parametrize("write", [False, True])
async def test_a_bad_on_success_value_fails_only_its_job(
    build: Build, pool: Any, write: bool
) -> None:
    """Proves an update on_success whose value breaks the batched statement for one row
    (`rank: 10 / (id - 2)`, a division by zero for row 2) fails that job alone: the others'
    rows get their rank (and, when the actions wrote through ctx.conn, keep those writes:
    the statement then runs in a savepoint; without, the batch is finished again row by
    row), the bad one's job is discarded with Postgres's message."""
    rt = await build(
        config(
            "        action: work\n        on_success: mark_rank\n"
            f"        action_input: {{write: {str(write).lower()}}}",
            actions_extra=MARK_RANK,
        ),
        ROWS,
    )
    await scan(rt)
    counts = await run_all(rt)
    assert (counts["completed"], counts["discarded"]) == (5, 1)
    rows = {r["id"]: (r["rank"], r["note"]) for r in await pool.fetch("SELECT * FROM orders")}
    note = "written" if write else None
    ranks = {1: -10, 2: None, 3: 10, 4: 5, 5: 3, 6: 2}
    assert rows == {i: (rank, None if i == 2 else note) for i, rank in ranks.items()}
    [bad] = [j for j in await jobs(pool) if j["state"] == "discarded"]
    assert bad["args"]["pk"] == {"id": 2}
    assert "division by zero" in bad["errors"][-1]["error"]
    assert len(actions.CALLS) == 6  # no action ran twice


async def test_outside_the_transaction_nothing_is_held(build: Build, pool: Any) -> None:
    """Proves that with action_in_transaction: false, while the action runs, the row can
    be locked by anyone (FOR UPDATE NOWAIT succeeds) and the database has no transaction
    of jobd open; afterwards on_success runs and the job completes."""
    rt = await build(
        config(
            "        action: work\n        on_success: done\n        lock_for_update: false\n"
            "        action_in_transaction: false\n        action_input: {gate: true}"
        ),
        ORDERS + "INSERT INTO orders (id, status) VALUES (1, 'new');",
    )
    await scan(rt)
    running = asyncio.create_task(run_all(rt))
    await asyncio.wait_for(actions.STARTED.wait(), 10)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM orders WHERE id = 1 FOR UPDATE NOWAIT")
        open_elsewhere = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
        )
    assert open_elsewhere == 0
    actions.GATE.set()
    counts = await running
    assert counts["completed"] == 1
    assert await pool.fetchval("SELECT processed FROM orders WHERE id = 1") is True


async def test_a_row_changed_during_the_action_is_cancelled(build: Build, pool: Any) -> None:
    """Proves that with action_in_transaction: false a row that stops matching while its
    action runs ends its job cancelled (`row_changed_during_action`), its on_success not
    run, while a row that still matches completes."""
    rt = await build(
        config(
            "        action: work\n        where: \"status = 'new'\"\n        on_success: done\n"
            "        lock_for_update: false\n        action_in_transaction: false\n"
            "        action_input: {gate: true}"
        ),
        ORDERS + "INSERT INTO orders (id, status) VALUES (1, 'new'), (2, 'new');",
    )
    await scan(rt)
    running = asyncio.create_task(run_all(rt))
    await asyncio.wait_for(actions.STARTED.wait(), 10)
    await pool.execute("UPDATE orders SET status = 'taken' WHERE id = 2")
    actions.GATE.set()
    await running
    assert await states(pool) == {1: "completed", 2: "cancelled"}
    [changed] = [j for j in await jobs(pool) if j["state"] == "cancelled"]
    assert changed["errors"][-1]["error"] == "row_changed_during_action"
    rows = {r["id"]: r["processed"] for r in await pool.fetch("SELECT id, processed FROM orders")}
    assert rows == {1: True, 2: None}
    assert len(actions.CALLS) == 2


async def test_ctx_conn_outside_the_transaction_says_why(build: Build, pool: Any) -> None:
    """Proves an action run with action_in_transaction: false that uses ctx.conn fails
    with a message naming the option and what to do."""
    rt = await build(
        config(
            "        action: work\n        lock_for_update: false\n"
            "        action_in_transaction: false\n        action_input: {write: true}"
        ),
        ORDERS + "INSERT INTO orders (id, status) VALUES (1, 'new');",
    )
    await scan(rt)
    counts = await run_all(rt)
    assert counts["discarded"] == 1
    [job] = await jobs(pool)
    message = job["errors"][-1]["error"]
    assert "ctx.conn is not available" in message and "action_in_transaction" in message


async def test_a_stop_commits_the_finished_jobs_of_a_batch(build: Build, pool: Any) -> None:
    """Proves a stop past the grace, while one job of a batch still runs, commits the
    batch's finished jobs (completed, their on_success written) and returns the unfinished
    one to available with its attempt not counted and nothing of it written."""
    rt = await build(
        config(
            "        action: work\n        on_success: done\n        action_input: {write: true}"
        ),
        ORDERS + "INSERT INTO orders (id, status) SELECT g, 'new' FROM generate_series(1, 3) g;",
    )
    await scan(rt)
    # Only the scheduler ran so far: one more row whose job sleeps, in the same batch.
    await pool.execute(
        "UPDATE jobd.jobs SET args = jsonb_set(args, '{input}', '{\"sleep_s\": 60}')"
        " WHERE args -> 'pk' = '{\"id\": 2}'"
    )
    queue = rt.spec.resources["orders"].triggers["process"].queue
    engine = Engine(pool, EngineConfig(queues=(QueueConfig(queue, limit=5),)), rt.registry)
    rt.attach(engine)
    await engine.start()
    await eventually(lambda: len(actions.CALLS) == 3)
    await asyncio.sleep(0.2)  # deliberately: the two quick jobs have finished
    await engine.stop(grace_s=0.1)
    assert await states(pool) == {1: "completed", 2: "available", 3: "completed"}
    row = await pool.fetchrow("SELECT attempt FROM jobd.jobs WHERE args -> 'pk' = '{\"id\": 2}'")
    assert row["attempt"] == 0
    rows = {r["id"]: r["note"] for r in await pool.fetch("SELECT id, note FROM orders")}
    assert rows == {1: "written", 2: None, 3: "written"}


@pytest.mark.parametrize("locked", [True, False])
async def test_lock_for_update_in_a_batch(build: Build, pool: Any, locked: bool) -> None:
    """Proves the default batch holds its rows FOR UPDATE while the actions run (a NOWAIT
    lock fails), and does not with lock_for_update: false."""
    rt = await build(
        config(
            f"        action: work\n        lock_for_update: {str(locked).lower()}\n"
            "        action_input: {gate: true}"
        ),
        ROWS,
    )
    await scan(rt)
    running = asyncio.create_task(run_all(rt))
    await asyncio.wait_for(actions.STARTED.wait(), 10)
    async with pool.acquire() as conn, conn.transaction():
        if locked:
            with pytest.raises(asyncpg.LockNotAvailableError):
                await conn.execute("SELECT 1 FROM orders WHERE id = 4 FOR UPDATE NOWAIT")
        else:
            await conn.execute("SELECT 1 FROM orders WHERE id = 4 FOR UPDATE NOWAIT")
    actions.GATE.set()
    await running
