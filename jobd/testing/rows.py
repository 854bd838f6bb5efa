"""Whether a row matches a trigger now: the worker's own re-read, by primary key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobd.model import Resource, Trigger
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.sqlgen import reread_sql


async def row_matches(
    runtime: TriggerRuntime,
    resource: Resource,
    trigger: Trigger,
    pk: Mapping[str, Any],
    tenant: str | None,
) -> bool:
    """The row `pk` (of `tenant`'s table with schema tenancy) exists and passes the
    trigger's `where` and its read's, as the worker's re-read sees it (in a transaction
    of its own, rolled back: a FOR UPDATE of the re-read holds nothing afterwards)."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        table, table_sql = await runtime.deps.tables.table_for(conn, resource, tenant)
        sql = reread_sql(resource, trigger, table, table_sql, runtime.schema)
        row = await conn.fetchrow(sql, dict(pk))
    return row is not None
