"""Runtime wiring: cron entries, states, pinned names, scheduled actions, the API, and the
start-up check of the configuration against the real tables."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobd.config import load_config_text
from jobd.engine.config import EngineConfig, QueueConfig
from jobd.engine.context import JobContext
from jobd.engine.cron import cron_once
from jobd.engine.engine import Engine
from jobd.engine.producer import job_from_row
from jobd.engine.registry import WorkerRegistry
from jobd.errors import UsageError
from jobd.triggers.jobs import cron_entries
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.tables import TableCheckError
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import HEADER, Build, jobs, run_all
from tests.integration.triggers.test_scheduler import ORDERS, config

STATES = """
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      live: {action: work, scheduler_cron: "*/5 * * * *", scheduler_queue: scans,
             scheduler_priority: 4, max_scheduler_attempts: 2}
      manual: {action: work, scheduler_cron: false}
      resting: {action: work, state: paused, queue: q}
      gone: {action: work, state: deleted}
    scheduled_actions:
      nightly: {action: work, cron: "30 0 2 * * *", timezone: Europe/Berlin, overlap: allow,
                catch_up: all, catch_up_window: 2h, action_input: {period: day}}
      off: {action: work, cron: "@hourly", state: paused}
queues: {scans: 1, q: 10}
"""


def test_cron_entries() -> None:
    """One entry per active scheduler (overlap skip, its queue, priority and attempts) and
    per active schedule; scheduler_cron false, paused and deleted give none."""
    spec = load_config_text(HEADER + STATES, "t.yaml", env={})
    entries = {e.name: e for e in cron_entries(spec)}
    assert set(entries) == {"orders.live.scheduler", "orders.nightly"}
    live = entries["orders.live.scheduler"]
    assert (live.expression, live.overlap, live.job.worker, live.job.queue) == (
        "*/5 * * * *",
        "skip",
        "orders.live.scheduler",
        "scans",
    )
    assert (live.job.priority, live.job.max_attempts) == (4, 2)
    nightly = entries["orders.nightly"]
    assert (nightly.expression, nightly.timezone, nightly.overlap, nightly.catch_up) == (
        "30 0 2 * * *",
        "Europe/Berlin",
        "allow",
        "all",
    )
    assert nightly.catch_up_window_s == 7200
    assert nightly.job.args["input"] == {"period": "day"}


async def test_states(build: Build, pool: Any) -> None:
    """deleted: waiting jobs cancelled at start, no worker; paused: registered, but a real
    engine does not fetch its jobs (they wait as available) until it is resumed."""
    await pool.execute(ORDERS)
    for worker in ("orders.gone", "orders.resting"):
        await pool.execute(
            "INSERT INTO jobd.jobs (worker, queue, uniq_key) VALUES ($1, 'q', $1)", worker
        )
    rt = await build(STATES)
    states = {r["worker"]: r["state"] for r in await jobs(pool)}
    assert states == {"orders.gone": "cancelled", "orders.resting": "available"}
    assert (await jobs(pool, "orders.gone"))[0]["uniq_key"] is None
    assert "orders.gone" not in rt.registry and "orders.resting" in rt.registry

    engine = Engine(
        pool, EngineConfig(queues=(QueueConfig("q"),), poll_interval_s=0.05), rt.registry
    )
    rt.attach(engine)  # before start: the paused workers are never fetched
    assert set(engine.paused_workers) == {
        "orders.resting",
        "orders.resting.scheduler",
        "orders.off",
    }
    async with engine:
        fetches = engine.producers["q"].fetches
        while engine.producers["q"].fetches < fetches + 5:  # several polls went by
            await asyncio.sleep(0.02)
        assert (await jobs(pool, "orders.resting"))[0]["state"] == "available"
        engine.set_paused_workers([])  # resumed: the job runs (its row is gone: cancelled)
        for _ in range(250):
            if (await jobs(pool, "orders.resting"))[0]["state"] == "cancelled":
                break
            await asyncio.sleep(0.02)
        assert (await jobs(pool, "orders.resting"))[0]["state"] == "cancelled"
    assert actions.CALLS == []


async def test_pinned_worker_name_survives_a_rename(build: Build, pool: Any) -> None:
    """With worker_name pinned, a renamed trigger still runs the jobs enqueued before."""
    body = config("        action: work\n        worker_name: orders.v1")
    rt = await build(body, ORDERS + "INSERT INTO orders (id) VALUES (1);")
    assert await rt.enqueuer().run_trigger("orders", "process", {"id": 1})
    spec = load_config_text(HEADER + body.replace("process:", "renamed:"), "t.yaml", env={})
    async with pool.acquire() as conn:
        renamed = await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
    assert (await run_all(renamed))["completed"] == 1
    assert actions.CALLS[0]["trigger"] == "renamed"


async def test_schedule_trigger_shares_the_cron_key(build: Build, pool: Any) -> None:
    """schedule_trigger enqueues the scheduler now; while a scheduler job waits (from cron or
    the API) no second one is enqueued; draining runs the scan and the workers."""
    rt = await build(config("        action: work"), ORDERS + "INSERT INTO orders (id) VALUES (1);")
    first = await rt.enqueuer().schedule_trigger("orders", "process")
    assert first is not None
    assert await rt.enqueuer().schedule_trigger("orders", "process") is None
    engine_config = EngineConfig(crons=cron_entries(rt.spec))
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await cron_once(conn, engine_config, now)
        assert await cron_once(conn, engine_config, now + timedelta(seconds=61)) == 0
    await run_all(rt)
    assert len(actions.CALLS) == 1


async def test_scheduled_actions(build: Build, pool: Any) -> None:
    """A schedule runs its action with action_input (merged with a run's input) and
    default_actor; on a multitenant resource a run fans out to one job per tenant, with
    per-tenant overlap keys."""
    rt = await build(
        """
list_tenants: [acme, globex, initech]
resources:
  plain:
    table: orders
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    scheduled_actions:
      nightly: {action: work, cron: "@daily", action_input: {period: day, n: 1},
                default_actor: {id: 0}}
  tenanted:
    table: orders
    multitenancy: {strategy: attribute, attribute: org}
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    scheduled_actions:
      hourly: {action: work, cron: "@hourly"}
""",
        ORDERS,
    )
    await rt.enqueuer().schedule("plain", "nightly", input={"period": "week"})
    await run_all(rt)
    assert actions.CALLS[0]["input"] == {"period": "week", "n": 1}
    assert actions.CALLS[0]["actor"] == {"id": 0} and actions.CALLS[0]["schedule"] == "nightly"
    worker = rt.registry.get("tenanted.hourly")
    assert worker is not None
    for _ in range(2):  # the second fan-out finds every tenant's run still waiting
        fanout = await rt.enqueuer().schedule("tenanted", "hourly")
        job = await claim(pool, fanout)
        await worker.fn(job, JobContext(job, "node-1", pool))
    children = await pool.fetch(
        "SELECT uniq_key, args->>'tenant' AS tenant FROM jobd.jobs"
        " WHERE worker = 'tenanted.hourly' AND NOT args ? 'fanout' ORDER BY 2"
    )
    assert [r["uniq_key"] for r in children] == [
        "tenanted.hourly:acme",
        "tenanted.hourly:globex",
        "tenanted.hourly:initech",
    ]
    await run_all(rt)
    tenants = sorted(c["tenant"] for c in actions.CALLS if c["schedule"] == "hourly")
    assert tenants == ["acme", "globex", "initech"]


async def claim(pool: Any, job_id: int) -> Any:
    """Mark a job executing by node-1 and return it as a worker sees it."""
    row = await pool.fetchrow(
        "UPDATE jobd.jobs SET state = 'executing', attempt = 1, attempted_by = 'node-1'"
        " WHERE id = $1 RETURNING id, queue, worker, args, meta, tags, attempt, max_attempts,"
        " priority, inserted_at, scheduled_at, attempted_at, errors",
        job_id,
    )
    return job_from_row(row, "node-1")


async def test_run_triggers_bulk_and_key_checks(build: Build, pool: Any) -> None:
    """run_triggers enqueues many rows in one statement, skipping rows with a job and rows
    that do not exist; a primary key naming other columns is a usage error."""
    rt = await build(
        config("        action: work"),
        ORDERS + "INSERT INTO orders (id) SELECT generate_series(1, 5);",
    )
    assert await rt.enqueuer().run_trigger("orders", "process", {"id": 1})
    ids = await rt.enqueuer().run_triggers("orders", "process", [{"id": i} for i in (1, 2, 3, 99)])
    assert len(ids) == 2
    with pytest.raises(UsageError, match="exactly"):
        await rt.enqueuer().run_triggers("orders", "process", [{"idd": 1}])
    async with pool.acquire() as conn, conn.transaction():
        await rt.enqueuer().run_trigger("orders", "process", {"id": 4}, conn=conn)
        await conn.execute("SELECT 1")
    assert len(await jobs(pool)) == 4


async def test_unique_key_same_from_scheduler_and_api(build: Build, pool: Any) -> None:
    """The key built by a scheduler scan equals the API's for int, text, uuid and timestamptz
    key columns, so either path blocks the other."""
    rt = await build(
        """
resources:
  things:
    table: things
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    triggers: {process: {action: work}}
""",
        "CREATE TABLE things (a int, b text, c uuid, d timestamptz, PRIMARY KEY (a, b, c, d));"
        "INSERT INTO things VALUES (1, 'x\"y', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',"
        " '2026-01-02 03:04:05.123456+00'), (2, 'é', gen_random_uuid(), now());",
    )
    res = rt.spec.resources["things"]
    from jobd.triggers.scheduler import run_scheduler

    assert (await run_scheduler(rt.deps, res, res.triggers["process"])).enqueued == 2
    for row in await jobs(pool):
        assert await rt.enqueuer().run_trigger("things", "process", row["args"]["pk"]) is None
    await pool.execute("TRUNCATE jobd.jobs")
    first = (await pool.fetchrow("SELECT to_jsonb(t) AS j FROM things t WHERE a = 1"))["j"]
    assert await rt.enqueuer().run_trigger("things", "process", first)
    assert (await run_scheduler(rt.deps, res, res.triggers["process"])).enqueued == 1


async def test_configuration_checked_against_tables(pool: Any) -> None:
    """Unknown columns in where, sort, read columns, update set and {sql}, a missing table
    and a table without primary key are all reported at once, with suggestions."""
    await pool.execute(ORDERS + "CREATE TABLE nokey (x int);")
    body = """
resources:
  orders:
    table: orders
    reads:
      r: {where: "stauts = 'x'", sort: [rnak], columns: [id, notee]}
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
      upd: {update: {set: {procesed: true, note: {sql: "lower(staus)"}}}}
    triggers:
      process: {action: work, where: "stat = 'new'", sort: [inserted]}
  missing:
    table: public.nothere
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
  keyless:
    table: nokey
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
"""
    spec = load_config_text(HEADER + body, "t.yaml", env={})
    async with pool.acquire() as conn:
        with pytest.raises(TableCheckError) as caught:
            await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
    text = str(caught.value)
    assert caught.value.exit_code == 2
    for expected in (
        'reads.r.where: unknown column "stauts"; did you mean "status"?',
        'reads.r.sort: unknown column "rnak"; did you mean "rank"?',
        'reads.r.columns: unknown column "notee"; did you mean "note"?',
        'update.set: unknown column "procesed"; did you mean "processed"?',
        'update.set.note: unknown column "staus"',
        'triggers.process.where: unknown column "stat"; did you mean "status"?',
        'triggers.process.sort: unknown column "inserted"; did you mean "inserted_at"?',
        'table "public.nothere" does not exist',
        'table "nokey" has no primary key',
    ):
        assert expected in text, expected
