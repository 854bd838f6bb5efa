"""A row: "what happened to orders 42?": its jobs, and whether it matches each trigger's
`where` now, condition by condition; and the SQL `jobd explain` prints for a trigger.

A trigger's `where` (and its read's filter) is split at its top-level ANDs; each part is
checked and compiled by jobd.where like the whole, and evaluated on the row in one
statement (console_row_check), so the page can say which condition is false.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import BoolExprType
from pglast.stream import RawStream

from jobd.model import Resource, Trigger
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.sql.ident import quote_ident
from jobd.triggers.events import event_function, event_trigger
from jobd.triggers.jobs import key_prefix, tenant_mode
from jobd.triggers.sqlgen import fill, reread_sql, scan_sql
from jobd.triggers.tables import ResolvedTable, TableCheckError, require_tenant, resolve_table
from jobd.where import compile_expression, parse_expression

MAX_ROW_JOBS = 50


def conditions(where: str) -> list[str]:
    """The top-level AND parts of a (checked) where expression, as SQL text."""
    statement = parse_sql(f"SELECT 1 FROM t WHERE ({where})")[0].stmt
    node = statement.whereClause if isinstance(statement, ast.SelectStmt) else None
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        return [RawStream()(arg) for arg in node.args or ()]
    return [where]


def trigger_conditions(resource: Resource, trigger: Trigger) -> list[tuple[str, str]]:
    """(where it comes from, condition) for the trigger's where and its read's filter."""
    found = [("where", part) for part in conditions(trigger.where)] if trigger.where else []
    read = resource.read_named(trigger.read)
    if read.where:
        found += [(f"read {read.name}", part) for part in conditions(read.where)]
    return found


async def table_of(conn: Connection, resource: Resource, tenant: str | None) -> ResolvedTable:
    require_tenant(resource, tenant)
    table, problems = await resolve_table(conn, resource, tenant)
    if table is None or problems:
        raise TableCheckError(problems)
    return table


@dataclass
class Check:
    trigger: str
    conditions: list[tuple[str, str, bool | None]]  # (source, condition, value now)

    @property
    def matches(self) -> bool:
        return all(value is True for _, _, value in self.conditions)


async def check_row(
    conn: Connection,
    resource: Resource,
    table: ResolvedTable,
    tenant: str | None,
    pk: dict[str, Any],
) -> tuple[dict[str, Any] | None, list[Check]]:
    """The row (None when it is gone) and, per trigger, each condition's value on it."""
    parts: list[tuple[str, str, str]] = []  # (trigger, source, condition)
    for trigger in resource.triggers.values():
        for source, condition in trigger_conditions(resource, trigger):
            parts.append((trigger.name, source, condition))
    checks = [
        f"({compile_expression(parse_expression(c), alias='t')}) AS c{i}"
        for i, (_, _, c) in enumerate(parts)
    ]
    table_sql = table.sql(tenant)
    join = " AND ".join(f"t.{quote_ident(c)} = w.{quote_ident(c)}" for c in table.primary_key)
    sql = fill(
        queries()["console_row_check"],
        {"table": table_sql, "checks": ", ".join(["true AS found", *checks]), "pk_join": join},
    )
    row = await conn.fetchrow(sql, pk)
    results = {t.name: Check(t.name, []) for t in resource.triggers.values()}
    for i, (name, source, condition) in enumerate(parts):
        results[name].conditions.append((source, condition, None if row is None else row[f"c{i}"]))
    return (None if row is None else dict(row["record"])), list(results.values())


async def row_jobs(
    conn: Connection,
    schema: str,
    resource: Resource,
    pk: dict[str, Any],
    tenant: str | None,
    window: tuple[int, int],
    key: list[str],
) -> list[dict[str, Any]]:
    """The row's jobs among the ids `window` (lowest, highest), newest first (no index
    holds jobs by row, so the console reads a bounded window of them at a time), and
    the jobs that hold the row's unique key now, wherever they are (by its index)."""
    triggers = list(resource.triggers.values())
    workers = [t.worker_name for t in triggers]
    prefixes = [key_prefix(t, tenant, tenant_mode(resource, t)) for t in triggers]
    q = queries(schema)["console_row_jobs"]
    low, high = window[0], window[1] + 1
    rows = await conn.fetch(q, workers, pk, tenant, MAX_ROW_JOBS, low, high, prefixes, key)
    return [dict(row.items()) for row in rows]


def explain_sql(
    resource: Resource, trigger: Trigger, table: ResolvedTable, tenant: str | None, schema: str
) -> str:
    """What `jobd explain` prints (it prints this): the scheduler's statements, the
    worker's re-read, and for each event the function and database trigger jobd
    installs."""
    table_sql = table.sql(tenant)
    scan = scan_sql(resource, trigger, table, table_sql, schema)
    paging = "keyset pages" if scan.paged else "one statement (order is not the primary key)"
    lines = [f"-- {resource.name}.{trigger.name}: scheduler {trigger.scheduler_name}, {paging}"]
    lines.append(f"-- scheduler: first page{'' if scan.paged else ' (the whole scan)'}")
    lines.append(scan.first.rstrip() + ";\n")
    if scan.next is not None:
        lines.append("-- scheduler: later pages (keyset after the last primary key)")
        lines.append(scan.next.rstrip() + ";\n")
    lines.append(f"-- worker {trigger.worker_name}: re-read of the row ($1 = primary key object)")
    lines.append(reread_sql(resource, trigger, table, table_sql, schema).rstrip() + ";")
    for event in trigger.events:
        function = event_function(resource, trigger, event, table, schema)
        created = event_trigger(function, table_sql, schema)
        lines.append(f"\n-- {event} events: the function and the database trigger jobd installs")
        lines.append(function.sql.rstrip() + ";\n")
        lines.append(function.comment_sql + ";\n")
        lines.append(created.sql.rstrip() + ";\n")
        lines.append(created.comment_sql + ";")
    return "\n".join(lines)
