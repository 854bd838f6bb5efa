"""Change-data triggers (`events:`, SPEC 5): the database triggers jobd installs enqueue in
the writing transaction, one statement per write, one job per row at a time as the scan;
delete jobs carry the old row; the scan stays the safety net."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from jobd.engine.drain import drain
from jobd.engine.registry import WorkerRegistry
from jobd.triggers.eventsync import event_notes, installed, sync_events
from jobd.triggers.expand import expand_worker
from jobd.triggers.jobs import expand_name
from jobd.triggers.runtime import TriggerRuntime
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import Build, jobs, run_all
from tests.integration.triggers.test_scheduler import scan

ORDERS = """
CREATE TABLE orders (
  id bigint PRIMARY KEY, status text, note text, org text,
  inserted_at timestamptz NOT NULL DEFAULT now()
);
"""


def config(
    events: str = "[insert, update, delete]",
    extra: str = "        columns: [status]",
    *,
    resource_extra: str = "",
) -> str:
    return f"""
resources:
  orders:
    table: orders
{resource_extra}
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
    triggers:
      process:
        action: work
        where: "status = 'new'"
        scheduler_cron: "0 0 1 1 *"
        events: {events}
{extra}
"""


async def db_triggers(pool: Any) -> list[tuple[str, str]]:
    """(table, trigger name) of every jobd_ trigger in the database."""
    rows = await pool.fetch(
        "SELECT tgrelid::regclass::text AS t, tgname::text AS n FROM pg_trigger"
        " WHERE tgname LIKE 'jobd\\_%' ORDER BY 1, 2"
    )
    return [(r["t"], r["n"]) for r in rows]


async def test_insert_enqueues_in_the_writing_transaction(build: Build, pool: Any) -> None:
    """An INSERT of matching rows enqueues one job per row in its own transaction (visible
    the moment it commits, no scan ran), keyed and shaped as the scan's with `event:
    insert`; a row that does not match gets none; the worker re-reads the row and the
    action sees `ctx.event`."""
    rt = await build(config(), ORDERS)
    await pool.execute("INSERT INTO orders (id, status) VALUES (1, 'new'), (2, 'old')")
    [job] = await jobs(pool, "orders.process")
    assert job["uniq_key"] == "orders.process::[1]"
    assert job["args"] == {
        "pk": {"id": 1},
        "tenant": None,
        "actor": None,
        "input": {},
        "extra": {},
        "event": "insert",
    }
    assert (job["queue"], job["priority"], job["max_attempts"]) == ("orders_process", 2, 1)
    assert (await scan(rt)).enqueued == 0  # the scan finds the row's key held
    await run_all(rt)
    [call] = actions.CALLS
    assert (call["event"], call["record"]["status"]) == ("insert", "new")


async def test_update_of_a_listed_and_an_unlisted_column(build: Build, pool: Any) -> None:
    """With `columns: [status]` an UPDATE that changes only another column enqueues
    nothing, nor one that sets status to the value it had; one that changes status (and
    matches `where`) enqueues an `update` job; rows the statement left unmatched get none."""
    rt = await build(config(), ORDERS)
    await pool.execute(
        "INSERT INTO orders (id, status) SELECT g, 'old' FROM generate_series(1, 3) g"
    )
    await pool.execute("UPDATE orders SET note = 'x'")
    await pool.execute("UPDATE orders SET status = 'old'")
    assert await jobs(pool) == []
    await pool.execute("UPDATE orders SET status = 'new', note = 'y' WHERE id IN (1, 2)")
    assert [(j["args"]["pk"]["id"], j["args"]["event"]) for j in await jobs(pool)] == [
        (1, "update"),
        (2, "update"),
    ]
    await run_all(rt)
    await pool.execute("UPDATE orders SET note = 'z' WHERE id = 1")  # status unchanged
    assert len(await jobs(pool)) == 2


async def test_update_without_columns_counts_every_update(build: Build, pool: Any) -> None:
    """Without `columns` every updated row that matches `where` is enqueued."""
    await build(config("[update]", ""), ORDERS + "INSERT INTO orders VALUES (1, 'new');")
    assert await jobs(pool) == []
    await pool.execute("UPDATE orders SET note = 'x'")
    [job] = await jobs(pool)
    assert job["args"]["event"] == "update"


async def test_delete_job_carries_the_old_row(build: Build, pool: Any) -> None:
    """A DELETE enqueues a job carrying the old row (typed again for the action, not
    re-read), with a key of its own, so a row deleted while its insert job waits gets
    both: the insert job is cancelled (no row), the delete job runs with the old row."""
    rt = await build(config(), ORDERS)
    await pool.execute("INSERT INTO orders (id, status, note) VALUES (7, 'new', 'n')")
    await pool.execute("DELETE FROM orders WHERE id = 7")
    insert, delete = await jobs(pool)
    assert insert["uniq_key"] == "orders.process::[7]"
    assert delete["uniq_key"] == "orders.process::delete:[7]"
    assert delete["args"]["event"] == "delete"
    assert delete["args"]["old"]["note"] == "n"
    await run_all(rt)
    states = {j["args"]["event"]: j["state"] for j in await jobs(pool)}
    assert states == {"insert": "cancelled", "delete": "completed"}
    [call] = actions.CALLS
    assert call["event"] == "delete"
    assert call["record"]["id"] == 7 and call["record"]["note"] == "n"
    assert isinstance(call["record"]["inserted_at"], dt.datetime)  # typed as the column


async def test_delete_jobs_outside_the_transaction(build: Build, pool: Any) -> None:
    """With `action_in_transaction: false` a delete job's batch is fenced twice (before
    and after the action) and still gets the old row, without a re-read."""
    rt = await build(config("[delete]", "        action_in_transaction: false"), ORDERS)
    await pool.execute("INSERT INTO orders (id, status) VALUES (3, 'new'); DELETE FROM orders")
    await run_all(rt)
    [job] = await jobs(pool)
    assert (job["state"], job["args"]["event"]) == ("completed", "delete")
    [call] = actions.CALLS
    assert (call["event"], call["record"]["id"], call["record"]["status"]) == ("delete", 3, "new")


async def test_writes_under_replica_role_are_left_to_the_scan(build: Build, pool: Any) -> None:
    """Rows written with `session_replication_role = replica` (a logical replica, a bulk
    load) fire no trigger; the scheduler's scan enqueues them."""
    rt = await build(config(), ORDERS)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
    assert await jobs(pool) == []
    assert (await scan(rt)).enqueued == 1


async def expand_only(rt: TriggerRuntime) -> None:
    """Run the trigger's expansion jobs, and nothing else."""
    resource = rt.spec.resources["orders"]
    trigger = resource.triggers["process"]
    registry = WorkerRegistry()
    registry.register(expand_name(trigger), expand_worker(rt.deps, resource, trigger))
    await drain(rt.pool, registry, timeout_s=60)


async def test_bulk_insert_of_10k_rows_is_one_statement(build: Build, pool: Any) -> None:
    """A 10,000-row INSERT calls the function ONCE (statement-level: one call counted by
    pg_stat_xact_user_functions in the writing transaction), which, the statement being
    bigger than EXPAND_MIN_ROWS, enqueues ONE expansion job carrying the keys; the daemon
    turns it into 10,000 jobs shaped and keyed as a small statement's, and ON CONFLICT
    leaves a row that got a job meanwhile (here: jobd.run_trigger) with that one."""
    rt = await build(config(), ORDERS)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL track_functions = 'pl'")
        await conn.execute(
            "INSERT INTO orders (id, status) SELECT g, 'new' FROM generate_series(1, 10000) g"
        )
        calls = await conn.fetchval(
            "SELECT sum(calls) FROM pg_stat_xact_user_functions WHERE funcname LIKE 'jobd\\_%'"
        )
    assert calls == 1
    [expansion] = await jobs(pool)
    assert expansion["worker"] == "orders.process#events"
    assert expansion["args"]["rows"] == 10_000
    assert expansion["args"]["k0"] == "{" + ",".join(map(str, range(1, 10_001))) + "}"
    await pool.execute("SELECT jobd.run_trigger('orders', 'process', '{\"id\": 5}')")
    await expand_only(rt)
    rows = await jobs(pool, "orders.process")
    assert len(rows) == 10_000 == len({r["uniq_key"] for r in rows})
    by_id = {r["args"]["pk"]["id"]: r for r in rows}
    assert "event" not in by_id[5]["args"]
    assert by_id[7]["uniq_key"] == "orders.process::[7]"
    assert by_id[7]["args"] == {
        "pk": {"id": 7},
        "tenant": None,
        "actor": None,
        "input": {},
        "extra": {},
        "event": "insert",
    }
    assert [j["state"] for j in await jobs(pool, "orders.process#events")] == ["completed"]


async def test_a_big_delete_and_tenants_expand_like_small_statements(
    build: Build, pool: Any
) -> None:
    """Past EXPAND_MIN_ROWS too, a delete's jobs carry the old rows, and with attribute
    tenancy each job's tenant is its row's; the actions get them as for a small one."""
    rt = await build(
        config(resource_extra="    multitenancy: {strategy: attribute, attribute: org}")
        + "list_tenants: [acme]\n",
        ORDERS + "INSERT INTO orders (id, status, org, note) SELECT g, 'old', CASE WHEN g % 2 = 0"
        " THEN 'acme' ELSE 'globex' END, 'n' || g FROM generate_series(1, 1500) g;",
    )
    await pool.execute("UPDATE orders SET status = 'new'")  # 1,500 update events
    await pool.execute("DELETE FROM orders")
    assert len(await jobs(pool, "orders.process#events")) == 2
    await expand_only(rt)
    rows = await jobs(pool, "orders.process")
    deletes = [r for r in rows if r["args"]["event"] == "delete"]
    assert len(rows) == 3000 and len(deletes) == 1500
    one = next(r for r in deletes if r["args"]["pk"]["id"] == 42)
    assert one["uniq_key"] == "orders.process::delete:[42]"
    assert (one["args"]["tenant"], one["args"]["old"]["note"]) == ("acme", "n42")
    await run_all(rt)
    calls = [c for c in actions.CALLS if c["event"] == "delete"]
    assert len(calls) == 1500
    assert all(c["tenant"] == c["record"]["org"] for c in calls)


async def test_expanded_keys_of_any_type_are_the_scans(build: Build, pool: Any) -> None:
    """A composite key of text and timestamptz, past EXPAND_MIN_ROWS: the expanded jobs'
    keys are exactly those the scan computes (a scan afterwards enqueues nothing) and
    those of a small statement's job (a quote, a comma, a brace in the text included)."""
    body = config("[insert]", "").replace("table: orders", "table: items")
    rt = await build(
        body,
        "CREATE TABLE items (code text, at timestamptz, status text, PRIMARY KEY (code, at));",
    )
    await pool.execute(
        "INSERT INTO items SELECT 'c' || g || CASE WHEN g % 7 = 0 THEN ' \"x,{y}' ELSE '' END,"
        " '2026-01-01 12:00:00.123456+00'::timestamptz + g * interval '1 ms', 'new'"
        " FROM generate_series(1, 1001) g"
    )
    await pool.execute("INSERT INTO items VALUES ('single \"x,{y}', now(), 'new')")
    await expand_only(rt)
    rows = await jobs(pool, "orders.process")
    assert len(rows) == 1002 == len({r["uniq_key"] for r in rows})
    assert (await scan(rt)).enqueued == 0
    seven = next(r for r in rows if r["args"]["pk"]["code"] == 'c7 "x,{y}')
    assert (
        seven["uniq_key"] == 'orders.process::["c7 \\"x,{y}", "2026-01-01T12:00:00.130456+00:00"]'
    )


async def test_a_rollback_enqueues_nothing(build: Build, pool: Any) -> None:
    """The jobs are written in the writing transaction: its rollback takes them along."""
    await build(config(), ORDERS)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
        assert await conn.fetchval("SELECT count(*) FROM jobd.jobs") == 1
        await tx.rollback()
    assert await jobs(pool) == []


async def test_a_row_written_while_the_trigger_was_disabled_is_found_by_the_scan(
    build: Build, pool: Any
) -> None:
    """The scan stays the safety net: a row inserted while the database trigger was
    disabled gets no job from it, and the scheduler's next run enqueues it; `jobd check
    --db` notes the disabled trigger."""
    rt = await build(config(), ORDERS)
    [(_, name)] = [t for t in await db_triggers(pool) if "insert" in t[1]]
    await pool.execute(f'ALTER TABLE orders DISABLE TRIGGER "{name}"')
    await pool.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
    assert await jobs(pool) == []
    async with pool.acquire() as conn:
        [note] = await event_notes(conn, rt.spec, rt.deps.tables)
    assert note.startswith("resources.orders.triggers.process.events: database trigger")
    assert note.endswith("is disabled: the scheduler's scan is the only safety net")
    assert (await scan(rt)).enqueued == 1
    [job] = await jobs(pool)
    assert "event" not in job["args"]


async def test_installs_are_idempotent_and_drift_is_seen(build: Build, pool: Any) -> None:
    """A second start changes nothing (the definition hashes match); a dropped trigger is
    noted by `jobd check --db` (at the trigger's `events` key) and installed again at the
    next start; a changed `where` replaces the function."""
    rt = await build(config(), ORDERS)
    before = await db_triggers(pool)
    assert len(before) == 3
    async with pool.acquire() as conn:
        assert not (await sync_events(conn, rt.spec, rt.deps.tables)).changed
        await conn.execute(f'DROP TRIGGER "{before[0][1]}" ON orders')
        [note] = await event_notes(conn, rt.spec, rt.deps.tables)
    assert note.startswith("resources.orders.triggers.process.events: database trigger")
    assert "(delete) is missing (jobd run or jobd migrate -c CONFIG installs it)" in note
    await build(config(), "")
    assert await db_triggers(pool) == before
    await build(config().replace("status = 'new'", "status = 'fresh'"), "")
    await pool.execute("INSERT INTO orders (id, status) VALUES (1, 'new'), (2, 'fresh')")
    assert [j["args"]["pk"]["id"] for j in await jobs(pool)] == [2]


async def test_dropping_events_from_the_configuration_removes_the_db_trigger(
    build: Build, pool: Any
) -> None:
    """A configuration without `events` (a reload, a restart) removes the database
    triggers and functions; writes enqueue nothing any more. Removing one event removes
    only its trigger."""
    await build(config(), ORDERS)
    await build(config("[insert, update]"), "")
    assert [n.split("_")[3] for _, n in await db_triggers(pool)] == ["insert", "update"]
    await build(config("[insert]", ""), "")
    assert len(await db_triggers(pool)) == 1
    await build(config("[insert]", "").replace("        events: [insert]\n", ""), "")
    assert await db_triggers(pool) == []
    assert await installed_functions(pool) == []
    await pool.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
    assert await jobs(pool) == []


async def installed_functions(pool: Any) -> list[str]:
    async with pool.acquire() as conn:
        return sorted((await installed(conn, "jobd")).functions)


async def test_two_runtimes_starting_at_once_install_once(build: Build, pool: Any) -> None:
    """Two daemons starting on one configuration at the same moment take turns under the
    advisory lock: both start, one set of triggers exists, and a write enqueues once."""
    await pool.execute(ORDERS)
    first, second = await asyncio.gather(build(config()), build(config()))
    assert len(await db_triggers(pool)) == 3
    await pool.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
    assert len(await jobs(pool)) == 1
    await run_all(second)
    assert len(actions.CALLS) == 1
    assert first.spec == second.spec


async def test_the_applications_role_needs_no_rights_on_jobds_schema(
    build: Build, pool: Any
) -> None:
    """The function is SECURITY DEFINER: a role with rights on the table only, none on
    jobd's schema (nor EXECUTE on the function: PUBLIC has none), writes rows and their
    jobs are enqueued."""
    await build(config(), ORDERS)
    public = await pool.fetchval(  # a NULL acl is the default one: EXECUTE for PUBLIC
        "SELECT count(*) FROM pg_proc AS p WHERE p.proname LIKE 'jobd\\_%' AND (p.proacl IS NULL"
        " OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) AS a WHERE a.grantee = 0))"
    )
    assert public == 0
    role = f"app_{uuid.uuid4().hex[:8]}"
    await pool.execute(f"CREATE ROLE {role}; GRANT ALL ON orders TO {role}")
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute("INSERT INTO orders (id, status) VALUES (1, 'new')")
            await conn.execute("UPDATE orders SET status = 'new', note = 'x'")
        assert len(await jobs(pool)) == 1
    finally:
        await pool.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_attribute_tenancy_takes_the_tenant_from_the_row(build: Build, pool: Any) -> None:
    """Attribute tenancy: each event job's tenant is the row's attribute (as text), its
    key the one the scan gives the row."""
    await build(
        config(resource_extra="    multitenancy: {strategy: attribute, attribute: org}")
        + "list_tenants: [acme]\n",
        ORDERS,
    )
    await pool.execute(
        "INSERT INTO orders (id, status, org) VALUES (1, 'new', 'acme'), (2, 'new', 'globex')"
    )
    rows = await jobs(pool)
    assert [(r["args"]["tenant"], r["uniq_key"]) for r in rows] == [
        ("acme", "orders.process::[1]"),
        ("globex", "orders.process::[2]"),
    ]


SCHEMA_CONFIG = config(
    "[insert]",
    '        list_tenants: {sql: "SELECT name FROM public.tenants ORDER BY name"}',
    resource_extra="    multitenancy: {strategy: schema}",
)


def tenant_sql(name: str) -> str:
    return (
        f"CREATE SCHEMA {name}; CREATE TABLE {name}.orders (id bigint PRIMARY KEY, status text);"
        f"INSERT INTO public.tenants VALUES ('{name}');"
    )


async def test_schema_tenancy_installs_on_a_tenant_added_later(build: Build, pool: Any) -> None:
    """Schema tenancy: the trigger is installed on each listed tenant's table; a tenant
    added later gets it at the trigger's next scheduler run; each job's tenant (and key)
    is the schema whose table was written."""
    rt: TriggerRuntime = await build(
        SCHEMA_CONFIG, "CREATE TABLE public.tenants (name text);" + tenant_sql("acme")
    )
    assert [t for t, _ in await db_triggers(pool)] == ["acme.orders"]
    await pool.execute(tenant_sql("globex"))
    await pool.execute("INSERT INTO globex.orders VALUES (1, 'new')")
    assert await jobs(pool) == []  # not installed there yet
    await scan(rt)  # the scheduler's run lists globex: installs, and scans its row
    assert [t for t, _ in await db_triggers(pool)] == ["acme.orders", "globex.orders"]
    await pool.execute(
        "INSERT INTO globex.orders VALUES (2, 'new'); INSERT INTO acme.orders VALUES (2, 'new')"
    )
    keys = sorted(r["uniq_key"] for r in await jobs(pool))
    assert keys == [
        "orders.process:acme:[2]",
        "orders.process:globex:[1]",
        "orders.process:globex:[2]",
    ]
    await run_all(rt)
    assert sorted((c["tenant"], c["pk"]["id"]) for c in actions.CALLS) == [
        ("acme", 2),
        ("globex", 1),
        ("globex", 2),
    ]
