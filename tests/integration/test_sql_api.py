"""The SQL API (migration 002): registry sync, jobd.run_trigger / run_triggers /
run_schedule inside the application's transaction, and equality with the Python API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobd.config import load_config_text
from jobd.engine.insert import insert_jobs
from jobd.engine.registry import WorkerRegistry
from jobd.model import Spec
from jobd.sql.db import create_pool
from jobd.triggers.actors import store_actor
from jobd.triggers.jobs import schedule_job, scheduler_job
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.scheduler import run_scheduler
from jobd.triggers.sql_api import sync_registry

HEADER = """
version: 1
database: {url: "postgresql://unused"}
"""

CONFIG = """
actor_persister: {store: [id, org]}
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process: {action: work, queue: work, priority: 3, max_attempts: 7, trigger_once: true,
                discard_cooldown: 90s, action_input: {mode: fast}, scheduler_cron: "* * * * *",
                scheduler_queue: scans, scheduler_priority: 2, max_scheduler_attempts: 4,
                tags: [billing, "a b"]}
      resting: {action: work, state: paused}
      gone: {action: work, state: deleted}
    scheduled_actions:
      nightly: {action: work, cron: "@daily", action_input: {period: day, n: 1}, tags: [reports]}
  things:
    table: things
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    triggers: {process: {action: work}}
  tenanted:
    table: torders
    multitenancy: {strategy: attribute, attribute: org}
    list_tenants: [acme, globex]
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    triggers: {process: {action: work}}
queues: {work: 1, scans: 1}
"""

TABLES = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 5) AS i;
CREATE TABLE things (a int, b text, c uuid, d timestamptz, PRIMARY KEY (a, b, c, d));
INSERT INTO things VALUES (1, 'x"y', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
                           '2026-01-02 03:04:05.123456+00');
CREATE TABLE torders (id bigint PRIMARY KEY, org text NOT NULL);
INSERT INTO torders VALUES (1, 'acme'), (2, 'globex');
"""

# Every column that defines a job (id and timestamps differ by nature).
JOB_COLUMNS = (
    "state::text, queue, worker, args, meta, tags, errors, attempt, max_attempts, priority,"
    " uniq_key, uniq_hold"
)


def call(trigger: str, pk: int) -> str:
    """SQL calling jobd.run_trigger for an `orders` row."""
    return f"SELECT jobd.run_trigger('orders', '{trigger}', '{{\"id\": {pk}}}')"


def spec_of(body: str = CONFIG) -> Spec:
    return load_config_text(HEADER + body, "test.yaml", env={})


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    """A jobd pool on the test's database, with the tables created and the registry synced."""
    p = await create_pool(database_url, min_size=1, max_size=4)
    try:
        await p.execute(TABLES)
        async with p.acquire() as conn:
            await sync_registry(conn, spec_of())
        yield p
    finally:
        await p.close()


async def runtime(pool: Any) -> TriggerRuntime:
    async with pool.acquire() as conn:
        return await TriggerRuntime.create(spec_of(), WorkerRegistry(), pool, conn)


async def job_rows(pool: Any) -> list[tuple[Any, ...]]:
    rows = await pool.fetch(f"SELECT {JOB_COLUMNS} FROM jobd.jobs ORDER BY id")
    return [tuple(r) for r in rows]


async def test_commit_enqueues_and_rollback_does_not(pool: Any) -> None:
    """A job enqueued by jobd.run_trigger exists after COMMIT, with its notification sent
    only then; after ROLLBACK there is no job."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            job_id = await conn.fetchval(call("process", 1))
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await conn.fetchval(call("process", 2))
                raise RuntimeError("application rolls back")
    rows = await pool.fetch("SELECT id, args FROM jobd.jobs")
    assert [r["id"] for r in rows] == [job_id]
    assert rows[0]["args"]["pk"] == {"id": 1}


async def test_notify_after_commit(database_url: str, pool: Any) -> None:
    """The insert channel gets the queue name when the enqueuing transaction commits."""
    listener = await asyncpg.connect(database_url)
    got: list[str] = []
    try:
        await listener.add_listener("jobd_insert", lambda *a: got.append(a[3]))
        await pool.fetchval(call("process", 3))
        await listener.fetchval("SELECT 1")  # a round trip delivers pending notifications
        assert got == ["work"]
    finally:
        await listener.close()


async def test_unique_key_blocks_a_second_job(pool: Any) -> None:
    """While a row's job is pending a second call returns NULL; run_triggers skips rows
    with a job and rows that do not exist."""
    first = await pool.fetchval(call("process", 1))
    assert first is not None
    assert await pool.fetchval(call("process", 1)) is None
    ids = await pool.fetchval(
        "SELECT jobd.run_triggers('orders', 'process', '[{\"id\": 1}, {\"id\": 2}, {\"id\": 99}]')"
    )
    assert len(ids) == 1


async def test_unknown_trigger_error_and_hint(pool: Any) -> None:
    """Unknown and deleted triggers raise SQLSTATE 42704 with the known triggers as hint;
    unknown resources list the resources; a missing row is P0002; a bad key 22023."""
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval(call("nope", 1))
    assert info.value.sqlstate == "42704"
    assert "resource 'orders' has no trigger 'nope'" in info.value.message
    assert info.value.hint == "triggers of orders: process, resting"
    with pytest.raises(asyncpg.PostgresError, match="it is deleted"):
        await pool.fetchval(call("gone", 1))
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval("SELECT jobd.run_trigger('nothing', 'process', '{\"id\": 1}')")
    assert info.value.hint == "resources with triggers: orders, tenanted, things"
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval(call("process", 99))
    assert info.value.sqlstate == "P0002"
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval("SELECT jobd.run_trigger('orders', 'process', '{\"idd\": 1}')")
    assert info.value.sqlstate == "22023" and "exactly id" in info.value.message


async def test_paused_trigger_enqueues(pool: Any) -> None:
    """A paused trigger still takes jobs (they wait for the resume)."""
    assert await pool.fetchval(call("resting", 1))


async def test_same_jobs_as_the_scheduler_and_cron(pool: Any) -> None:
    """The SQL functions build job rows identical to the Python paths (the scheduler's scan,
    and the job templates the cron enqueues): worker jobs (with actor store fields,
    trigger_once hold, input, tags), composite keys of int/text/uuid/timestamptz, tenants
    from the row or given, scheduler jobs and schedule runs."""
    rt = await runtime(pool)
    things_pk = dict((await pool.fetchrow("SELECT to_jsonb(t) AS j FROM things t"))["j"])
    actor = {"id": 7, "org": "acme", "secret": "x"}
    orders = rt.spec.resources["orders"]
    stored = store_actor(orders.triggers["process"].actor_persister, actor)
    nightly = orders.scheduled_actions["nightly"]

    for resource, stored_actor in (("orders", stored), ("things", None), ("tenanted", None)):
        res = rt.spec.resources[resource]
        await run_scheduler(rt.deps, res, res.triggers["process"], stored_actor=stored_actor)
    async with pool.acquire() as conn:
        await insert_jobs(conn, [scheduler_job(orders.triggers["process"], stored)])
        stored_for_schedule = store_actor(nightly.actor_persister, actor)
        run = schedule_job(
            orders, nightly, input={"period": "week"}, stored_actor=stored_for_schedule
        )
        await insert_jobs(conn, [run])
    by_python = sorted(await job_rows(pool), key=repr)
    await pool.execute("TRUNCATE jobd.jobs")

    q = "SELECT jobd.run_trigger($1, $2, $3::jsonb, $4::jsonb, $5)"
    keys = [{"id": i} for i in range(1, 6)]
    await pool.fetchval(
        "SELECT jobd.run_triggers('orders', 'process', $1::jsonb, $2::jsonb)", keys, actor
    )
    await pool.fetchval(q, "things", "process", things_pk, None, None)
    await pool.fetchval(q, "tenanted", "process", {"id": 1}, None, None)
    await pool.fetchval(q, "tenanted", "process", {"id": 2}, None, "globex")
    await pool.fetchval(q, "orders", "process", None, actor, None)
    await pool.fetchval(
        "SELECT jobd.run_schedule('orders', 'nightly', $1::jsonb, $2::jsonb)",
        {"period": "week"},
        actor,
    )
    by_sql = sorted(await job_rows(pool), key=repr)
    assert by_sql == by_python
    assert len(by_sql) == 10
    assert {"id": 7, "org": "acme"} in [row[3].get("actor") for row in by_sql]  # store fields
    assert {tuple(row[5]) for row in by_sql} == {("billing", "a b"), ("reports",), ()}


async def test_scheduler_job_shares_the_cron_key(pool: Any) -> None:
    """A NULL primary key enqueues the scheduler with key cron:<scheduler>; while it waits
    a second call returns NULL."""
    first = await pool.fetchval("SELECT jobd.run_trigger('orders', 'process')")
    assert first is not None
    assert await pool.fetchval("SELECT jobd.run_trigger('orders', 'process')") is None
    row = await pool.fetchrow("SELECT worker, queue, uniq_key FROM jobd.jobs WHERE id = $1", first)
    assert tuple(row) == ("orders.process.scheduler", "scans", "cron:orders.process.scheduler")


async def test_run_schedule(pool: Any) -> None:
    """run_schedule merges input over action_input; unknown names raise 42704 with a hint."""
    job_id = await pool.fetchval("SELECT jobd.run_schedule('orders', 'nightly', '{\"n\": 2}')")
    args = await pool.fetchval("SELECT args FROM jobd.jobs WHERE id = $1", job_id)
    assert args == {"input": {"period": "day", "n": 2}, "actor": None, "tenant": None}
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval("SELECT jobd.run_schedule('orders', 'weekly')")
    assert info.value.sqlstate == "42704"
    assert info.value.hint == "scheduled actions of orders: nightly"


async def test_sync_removes_dropped_triggers(pool: Any) -> None:
    """A trigger and a schedule dropped from the configuration leave the registry, and a
    call naming them fails; a changed setting is updated."""
    nightly = (
        '      nightly: {action: work, cron: "@daily", action_input: {period: day, n: 1},'
        " tags: [reports]}\n"
    )
    smaller = (
        CONFIG.replace("      resting: {action: work, state: paused}\n", "")
        .replace("    scheduled_actions:\n" + nightly, "")
        .replace("priority: 3", "priority: 5")
    )
    async with pool.acquire() as conn:
        await sync_registry(conn, spec_of(smaller))
    names = await pool.fetch(
        "SELECT resource, name FROM jobd.registry WHERE kind = 'trigger' ORDER BY 1, 2"
    )
    assert [tuple(n) for n in names] == [
        ("orders", "gone"),
        ("orders", "process"),
        ("tenanted", "process"),
        ("things", "process"),
    ]
    assert await pool.fetchval("SELECT count(*) FROM jobd.registry WHERE kind = 'schedule'") == 0
    assert (
        await pool.fetchval(
            "SELECT (job->>'priority')::int FROM jobd.registry"
            " WHERE kind = 'trigger' AND name = 'process' AND resource = 'orders'"
        )
        == 5
    )
    with pytest.raises(asyncpg.PostgresError, match="no trigger 'resting'"):
        await pool.fetchval(call("resting", 1))


async def test_schema_tenancy_same_as_the_scheduler(pool: Any) -> None:
    """Schema strategy: the tenant names the table's schema and enters the unique key,
    identically in the scheduler's scan and the SQL function; a missing tenant is 22023."""
    await pool.execute(
        "CREATE SCHEMA acme; CREATE TABLE acme.accounts (id int PRIMARY KEY);"
        "INSERT INTO acme.accounts VALUES (1);"
    )
    accounts = (
        "  accounts:\n"
        "    table: accounts\n"
        "    multitenancy: {strategy: schema}\n"
        "    list_tenants: [acme]\n"
        '    actions: {work: {python: "tests.integration.triggers.actions:record"}}\n'
        "    triggers: {process: {action: work}}\n"
    )
    spec = spec_of(CONFIG.replace("queues:", accounts + "queues:", 1))
    async with pool.acquire() as conn:
        await sync_registry(conn, spec)
        rt = await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
    accounts_res = rt.spec.resources["accounts"]
    await run_scheduler(rt.deps, accounts_res, accounts_res.triggers["process"])
    by_python = await job_rows(pool)
    await pool.execute("TRUNCATE jobd.jobs")
    sql = "SELECT jobd.run_trigger('accounts', 'process', '{\"id\": 1}', tenant => 'acme')"
    assert await pool.fetchval(sql)
    assert await job_rows(pool) == by_python
    assert by_python[0][10] == "accounts.process:acme:[1]"
    with pytest.raises(asyncpg.PostgresError) as info:
        await pool.fetchval("SELECT jobd.run_trigger('accounts', 'process', '{\"id\": 1}')")
    assert info.value.sqlstate == "22023"
