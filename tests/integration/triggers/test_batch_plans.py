"""The batch statements stay on their indexes over big tables whose statistics are stale
(issue 13: a set-based UPDATE once planned a sequential scan of the whole table). A jobs
table and an orders table of a million rows each, autovacuum off and never analyzed; the
plans of the batch's statements, custom and generic, are read with EXPLAIN."""

from __future__ import annotations

import json
from typing import Any

from jobd.actions.update import update_statement
from jobd.sql import queries, with_demand
from jobd.triggers.batchsql import batch_read_sql
from tests.integration.triggers.conftest import Build
from tests.integration.triggers.test_scheduler import config

ROWS = 1_000_000
BIG = f"""
CREATE TABLE orders (id bigint PRIMARY KEY, status text, processed boolean)
  WITH (autovacuum_enabled = false);
ALTER TABLE jobd.jobs SET (autovacuum_enabled = false);
INSERT INTO orders SELECT g, 'new', false FROM generate_series(1, {ROWS}) g;
INSERT INTO jobd.jobs (state, queue, worker, args, attempt, attempted_by, completed_at)
  SELECT 'completed', 'orders.process', 'orders.process', jsonb_build_object('pk',
         jsonb_build_object('id', g)), 1, 'old-node', now()
    FROM generate_series(1, {ROWS}) g;
UPDATE jobd.jobs SET state = 'executing', attempted_by = 'this-node', completed_at = NULL
 WHERE id > {ROWS} - 20;
"""


def scans(plan: Any) -> list[tuple[str, str]]:
    """(node type, relation) of every scan node of an EXPLAIN (FORMAT JSON) plan."""
    found = []

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node:
            found.append((node["Node Type"], node["Relation Name"]))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def literal(value: Any) -> str:
    """`value` as an SQL literal for EXECUTE (lists as array literals)."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "'{" + ",".join(str(v) for v in value) + "}'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def plans(conn: Any, sql: str, *args: Any) -> list[list[tuple[str, str]]]:
    """The scan nodes of `sql`'s custom plan and of its generic plan."""
    await conn.execute(f"PREPARE batch_stmt AS {sql}")
    literals = ", ".join(literal(a) for a in args)
    found = []
    for mode in ("force_custom_plan", "force_generic_plan"):
        await conn.execute(f"SET plan_cache_mode = {mode}")
        raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE batch_stmt({literals})")
        found.append(scans(json.loads(raw) if isinstance(raw, str) else raw))
    await conn.execute("DEALLOCATE batch_stmt; RESET plan_cache_mode")
    return found


async def test_batch_statements_use_their_indexes(build: Build, pool: Any) -> None:
    """Proves the batch's re-read, its on_success UPDATE of many rows and its completion
    (with the claim of the next jobs) probe the primary keys of jobs and orders instead
    of scanning a million rows, in custom and generic plans, with no statistics."""
    rt = await build(
        config("        action: work\n        on_success: done\n        where: \"status = 'new'\""),
        BIG,
    )
    assert await pool.fetchval("SELECT reltuples FROM pg_class WHERE relname = 'orders'") <= 0
    resource = rt.spec.resources["orders"]
    trigger = resource.triggers["process"]
    ids = [ROWS - i for i in range(10)]
    async with pool.acquire() as conn:
        table, table_sql = await rt.deps.tables.table_for(conn, resource, None)
        read = batch_read_sql(
            resource, trigger, table, table_sql, "jobd", lock_jobs=True, lock_rows=True
        )
        update = update_statement(table_sql, ("processed",), (), ("id",), many=True)
        pairs = json.dumps([[{"processed": True}, {"id": i}] for i in ids])
        q = queries("jobd")
        claim = ("orders.process", 10, "this-node", ids, [1] * 10, ["orders.process"], None)
        found = {
            "batch_read": await plans(conn, read, ids, [1] * 10, "this-node"),
            "action_update_many": await plans(conn, update, pairs),
            "ack_completed": await plans(conn, q["ack_completed"], ids, [1] * 10, "this-node"),
            "ack_and_fetch": await plans(conn, q["ack_and_fetch"], *claim),
            # The claim without a global limit: its generic plan is the one that runs.
            "ack_and_claim": await plans(
                conn,
                with_demand(q["ack_and_claim"], 10),
                "orders.process",
                "this-node",
                ids,
                [1] * 10,
                ["orders.process"],
            ),
        }
    for name, per_mode in found.items():
        for nodes in per_mode:
            seq = [relation for kind, relation in nodes if kind == "Seq Scan"]
            assert seq == [], f"{name}: sequential scan of {seq} in {nodes}"
            assert nodes, f"{name}: no scan at all?"
