"""Tenancy (SPEC 1.7): attribute and schema strategies, list_tenants sources,
use_tenant_from_record, tenant names checked before they reach SQL."""

from __future__ import annotations

from typing import Any

from jobd.model import TenantSource
from jobd.triggers.tenants import list_tenants
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import Build, jobs, run_all
from tests.integration.triggers.test_scheduler import scan

TENANTS = ("acme", "globex", "initech")


def attribute_config(trigger_extra: str = "", tenants: str = "[acme, globex, initech]") -> str:
    return f"""
list_tenants: {tenants}
resources:
  orders:
    table: orders
    multitenancy: {{strategy: attribute, attribute: org}}
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
      done: {{update: {{set: {{processed: true}}}}}}
    triggers:
      process:
        action: work
        where: "processed IS NOT TRUE"
        on_success: done
{trigger_extra}
"""


ATTRIBUTE_ROWS = """
CREATE TABLE orders (id int PRIMARY KEY, org text NOT NULL, processed boolean);
INSERT INTO orders SELECT g, (ARRAY['acme', 'globex', 'initech', 'other'])[g % 4 + 1], NULL
  FROM generate_series(1, 12) g;
"""


async def test_attribute_strategy_three_tenants(build: Build, pool: Any) -> None:
    """One scan per listed tenant, filtered by the attribute; each job stores its tenant and
    the action receives it; rows of unlisted tenants are left alone; record_limit is per
    tenant."""
    rt = await build(attribute_config("        record_limit: 2"), ATTRIBUTE_ROWS)
    result = await scan(rt)
    assert result.enqueued == 6  # 2 per tenant, 3 tenants
    rows = await jobs(pool)
    assert {r["args"]["tenant"] for r in rows} == set(TENANTS)
    await run_all(rt)
    for call in actions.CALLS:
        assert call["record"]["org"] == call["tenant"]
    assert (await scan(rt)).enqueued == 3  # the last row of each tenant


async def test_use_tenant_from_record(build: Build, pool: Any) -> None:
    """use_tenant_from_record scans all rows once; each job takes its tenant from the row."""
    rt = await build(attribute_config("        use_tenant_from_record: true"), ATTRIBUTE_ROWS)
    result = await scan(rt)
    assert (result.enqueued, result.pages) == (12, 1)
    for row in await jobs(pool):
        org = await pool.fetchval("SELECT org FROM orders WHERE id = $1", row["args"]["pk"]["id"])
        assert row["args"]["tenant"] == org


async def test_schema_strategy_three_tenants(build: Build, pool: Any) -> None:
    """Schema strategy: each tenant's own table is scanned, the key includes the tenant (same
    id in three schemas = three jobs), the worker and the update action work in the
    tenant's schema."""
    setup = "".join(
        f"CREATE SCHEMA {t}; CREATE TABLE {t}.orders (id int PRIMARY KEY, processed boolean);"
        f"INSERT INTO {t}.orders VALUES (1, NULL), (2, true);"
        for t in TENANTS
    )
    rt = await build(
        attribute_config().replace("{strategy: attribute, attribute: org}", "{strategy: schema}"),
        setup,
    )
    assert (await scan(rt)).enqueued == 3
    keys = sorted(r["uniq_key"] for r in await jobs(pool))
    assert keys == [f"orders.process:{t}:[1]" for t in TENANTS]
    await run_all(rt)
    for t in TENANTS:
        assert await pool.fetchval(f"SELECT count(*) FROM {t}.orders WHERE processed") == 2
    assert sorted(c["tenant"] for c in actions.CALLS) == list(TENANTS)


async def test_schema_strategy_without_tenants_at_start(build: Build, pool: Any) -> None:
    """With no tenant known at start the column checks are skipped; the table is resolved per
    tenant when the first job needs it."""
    rt = await build(
        attribute_config(tenants='{sql: "SELECT name FROM tenants ORDER BY name"}').replace(
            "{strategy: attribute, attribute: org}", "{strategy: schema}"
        ),
        "CREATE TABLE tenants (name text);",
    )
    assert not rt.deps.tables.resolved["orders"].checked
    await pool.execute(
        "INSERT INTO tenants VALUES ('acme'); CREATE SCHEMA acme;"
        " CREATE TABLE acme.orders (id int PRIMARY KEY, processed boolean);"
        " INSERT INTO acme.orders VALUES (1, NULL);"
    )
    assert (await scan(rt)).enqueued == 1
    await run_all(rt)
    assert await pool.fetchval("SELECT processed FROM acme.orders") is True


async def test_list_tenants_sources_and_bad_names(pool: Any) -> None:
    """list / sql / python sources; a name that is not an identifier is skipped (schema
    strategy), while attribute tenants may be any string."""
    await pool.execute("CREATE TABLE t (n text); INSERT INTO t VALUES ('a'), ('x y'), ('a');")
    async with pool.acquire() as conn:
        assert await list_tenants(TenantSource("list", names=("a", "b;drop")), conn) == ["a"]
        assert await list_tenants(TenantSource("sql", sql="SELECT n FROM t"), conn) == ["a"]
        sql_any = await list_tenants(
            TenantSource("sql", sql="SELECT n FROM t"), conn, identifiers=False
        )
        assert sql_any == ["a", "x y"]
        source = TenantSource("python", entrypoint="tests.integration.triggers.actions:tenants")
        assert await list_tenants(source, conn) == ["acme", "globex"]
        assert await list_tenants(None, conn) == []


async def test_run_trigger_with_tenant(build: Build, pool: Any) -> None:
    """run_trigger with an attribute tenant checks the row belongs to it; without one the
    row's tenant is stored."""
    rt = await build(attribute_config(), ATTRIBUTE_ROWS)
    from jobd.errors import RowNotFound

    org = await pool.fetchval("SELECT org FROM orders WHERE id = 1")
    assert await rt.enqueuer().run_trigger("orders", "process", {"id": 1}, tenant=org)
    try:
        await rt.enqueuer().run_trigger("orders", "process", {"id": 2}, tenant="nobody")
        raise AssertionError("expected RowNotFound")
    except RowNotFound:
        pass
    await rt.enqueuer().run_trigger("orders", "process", {"id": 3})
    tenants = {r["args"]["pk"]["id"]: r["args"]["tenant"] for r in await jobs(pool)}
    assert tenants == {1: org, 3: await pool.fetchval("SELECT org FROM orders WHERE id = 3")}
