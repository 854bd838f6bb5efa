"""The scheduler's statements stay on their indexes when the table's statistics are stale:
a table of 1,000,000 rows built by one INSERT, never analyzed, autovacuum off (so the
planner guesses a few hundred matching rows), EXPLAIN-ed as the scheduler runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from jobd.sql import queries
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.scheduler import scan_params
from jobd.triggers.sqlgen import ScanSql, scan_sql
from tests.integration.triggers.conftest import Build

ROWS = 1_000_000
MATCH = "kind = 'hit' AND handled IS NOT TRUE"
BODY = f"""
resources:
  events:
    table: events
    actions: {{done: {{update: {{set: {{handled: true}}}}}}}}
    triggers:
      paged: {{action: done, where: "{MATCH}"}}
      limited: {{action: done, where: "{MATCH}", record_limit: 500}}
      sorted: {{action: done, where: "{MATCH}", sort: [inserted_at], record_limit: 500}}
"""
SETUP = f"""
CREATE TABLE events (id bigint PRIMARY KEY, kind text, handled boolean,
                     inserted_at timestamptz NOT NULL) WITH (autovacuum_enabled = off);
INSERT INTO events
SELECT g, CASE WHEN g % 10 = 0 THEN 'hit' ELSE 'miss' END, NULL, now() - make_interval(secs => g)
  FROM generate_series(1, {ROWS}) g;
ALTER TABLE jobd.jobs SET (autovacuum_enabled = off);
"""
PAGE = 16_000  # the largest page at the default stream_batch_size
POSITION = ROWS // 2  # a later page starts after this key


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def reads(plan: dict[str, Any], relation: str) -> list[tuple[str, str | None]]:
    """(node type, index) of every node that reads `relation` (not the INSERT into it)."""
    return [
        (node["Node Type"], node.get("Index Name"))
        for node in nodes(plan)
        if node.get("Relation Name") == relation and node["Node Type"] != "ModifyTable"
    ]


def scan_cte(plan: dict[str, Any]) -> dict[str, Any]:
    return next(node for node in nodes(plan) if node.get("Subplan Name") == "CTE scan")


async def explain(
    conn: Any, settings: str, sql: str, params: list[Any], *, generic: bool
) -> dict[str, Any]:
    """The plan of `sql` under the scheduler's settings: custom (the parameters' values are
    known, as in the first executions of a prepared statement) or generic (what Postgres
    may switch to after five)."""
    async with conn.transaction():
        await conn.execute(settings)
        if not generic:
            text = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *params)
        else:
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute("PREPARE scan_statement AS " + sql)
            # EXECUTE takes no bind parameters: the values go in as literals.
            literals = [
                await conn.fetchval("SELECT quote_nullable($1::text)", _text(value))
                for value in params
            ]
            text = await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE scan_statement({', '.join(literals)})"
            )
            await conn.execute("DEALLOCATE scan_statement")
    plan: dict[str, Any] = text[0]["Plan"]  # jobd's json codec has decoded it
    return plan


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):  # a text[] (the tags): an array literal
        return "{" + ",".join(json.dumps(str(v)) for v in value) + "}"
    return json.dumps(value) if isinstance(value, dict) else str(value)


async def statements(rt: TriggerRuntime, name: str) -> tuple[ScanSql, list[Any]]:
    resource = rt.spec.resources["events"]
    trigger = resource.triggers[name]
    async with rt.pool.acquire() as conn:
        table, table_sql = await rt.deps.tables.table_for(conn, resource, None)
    scan = scan_sql(resource, trigger, table, table_sql, rt.deps.schema)
    params = scan_params(scan, trigger, schema=rt.deps.schema, tenant=None, mode="none")
    return scan, params


async def test_pages_walk_the_key_index_with_stale_statistics(build: Build, pool: Any) -> None:
    """Every keyset page (first and later, custom and generic plan, with and without
    record_limit) reads the table by its primary-key index in key order, with no
    sequential or bitmap scan and no sort of the table's rows, so a page stops at its
    LIMIT; the jobs table is read only through jobs_uniq_key, and only by the probe that
    record_limit needs (without one, ON CONFLICT alone looks keys up)."""
    rt = await build(BODY, SETUP)
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'events'") == -1
    settings = queries(rt.deps.schema)["trigger_scan_page_settings"]
    async with pool.acquire() as conn:
        for name in ("paged", "limited"):
            scan, params = await statements(rt, name)
            assert scan.paged and scan.next is not None
            params[8] = PAGE
            pages = [(scan.first, params), (scan.next, [*params, POSITION])]
            for sql, values in pages:
                for generic in (False, True):
                    plan = await explain(conn, settings, sql, values, generic=generic)
                    where = (name, sql is scan.next, generic)
                    assert reads(plan, "events") == [("Index Scan", "events_pkey")], where
                    assert all(n["Node Type"] != "Sort" for n in nodes(scan_cte(plan))), where
                    probes = reads(plan, "jobs")
                    if name == "paged" and not generic:
                        assert probes == [], where
                        continue
                    assert probes == [("Index Only Scan", "jobs_uniq_key")], where
                    if name == "paged":  # kept in a generic plan, skipped while running
                        filters = [n.get("Filter", "") for n in nodes(plan)]
                        assert any(f.startswith("(($10 IS NULL) OR") for f in filters), filters


async def test_single_statement_probes_jobs_by_their_key_index(build: Build, pool: Any) -> None:
    """A scan in another order (one statement that reads and sorts the matching rows)
    with record_limit probes the jobs table through jobs_uniq_key, never by scanning it,
    with stale statistics on both tables."""
    rt = await build(BODY, SETUP)
    settings = queries(rt.deps.schema)["trigger_scan_settings"]
    scan, params = await statements(rt, "sorted")
    assert not scan.paged
    async with pool.acquire() as conn:
        for generic in (False, True):
            plan = await explain(conn, settings, scan.first, params, generic=generic)
            assert reads(plan, "jobs") == [("Index Only Scan", "jobs_uniq_key")], generic
