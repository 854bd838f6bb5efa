"""Keep the SQL API's registry tables in step with the configuration.

The SQL functions `run_trigger` / `run_triggers` / `run_schedule` (migration 002) need no
YAML: they read `trigger_registry` and `schedule_registry`, which the daemon rewrites at
start and on reload with `sync_registry`: every trigger and schedule of the Spec upserted,
rows no longer in it deleted, in one transaction (a caller never sees half a config).

Each resource's table is resolved here, on the daemon's connection (its search_path), so
the functions, whose search_path is pinned, address the same table the daemon scans.
Python actor persisters cannot run in SQL: for them the SQL path stores the actor whole.
"""

from __future__ import annotations

import json
from typing import Any

from jobd.ident import quote_ident, quote_qualified
from jobd.model import ActorPersister, Resource, Spec
from jobd.sql import queries
from jobd.triggers.scheduler import worker_uniq_hold
from jobd.triggers.sqlgen import tenant_mode


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


def _store_fields(persister: ActorPersister | None) -> str | None:
    """The fields a job keeps of an actor (JSON text array); None: the whole actor."""
    if persister is None or persister.python is not None or persister.store is None:
        return None
    return _json(list(persister.store))


async def _table_schema(conn: Any, resource: Resource) -> str | None:
    """The schema the resource's table is in (None: the tenant's, or not found)."""
    if resource.multitenancy is not None and resource.multitenancy.strategy == "schema":
        return None
    if resource.table_schema:
        return resource.table_schema
    found: str | None = await conn.fetchval(
        queries()["registry_resolve_table"], quote_ident(resource.table_name)
    )
    return found


async def _trigger_rows(conn: Any, spec: Spec) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(21)]
    for resource in spec.resources.values():
        schema = await _table_schema(conn, resource)
        pk = list(resource.primary_key) if resource.primary_key else None
        if pk is None and schema is not None:
            table = quote_qualified(schema, resource.table_name)
            pk = list(await conn.fetchval(_PK_SQL, table) or []) or None
        attribute = resource.multitenancy.attribute if resource.multitenancy else None
        for t in resource.triggers.values():
            row = [
                resource.name, t.name, t.state, t.worker_name, t.scheduler_name, t.queue,
                t.scheduler_queue, t.priority, t.scheduler_priority, t.max_attempts,
                t.max_scheduler_attempts, _json(worker_uniq_hold(t)), schema,
                resource.table_name, _json(pk), tenant_mode(resource, t), attribute,
                _store_fields(t.actor_persister), _json(t.default_actor),
                _json(dict(t.action_input)), _json(dict(t.extra_args)),
            ]  # fmt: skip
            for col, value in zip(cols, row, strict=True):
                col.append(value)
    return cols


# The catalog primary key of a table (query trigger_table_info, reduced to the key).
_PK_SQL = "SELECT primary_key FROM (" + queries()["trigger_table_info"] + ") AS info"


def _schedule_rows(spec: Spec) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(11)]
    for resource in spec.resources.values():
        for s in resource.scheduled_actions.values():
            row = [
                resource.name, s.name, s.state, s.worker_name, s.queue, s.priority,
                s.max_attempts, resource.multitenancy is not None,
                _store_fields(s.actor_persister), _json(s.default_actor),
                _json(dict(s.action_input)),
            ]  # fmt: skip
            for col, value in zip(cols, row, strict=True):
                col.append(value)
    return cols


async def sync_registry(conn: Any, spec: Spec) -> None:
    """Make the registry tables describe exactly `spec`'s triggers and schedules (one
    transaction; nested in the caller's when there is one)."""
    q = queries(spec.database.schema)
    triggers = await _trigger_rows(conn, spec)
    schedules = _schedule_rows(spec)
    async with conn.transaction():
        if triggers[0]:
            await conn.execute(q["registry_upsert_triggers"], *triggers)
        if schedules[0]:
            await conn.execute(q["registry_upsert_schedules"], *schedules)
        kept = [f"{r}/{t}" for r, t in zip(triggers[0], triggers[1], strict=True)]
        await conn.execute(q["registry_prune_triggers"], kept)
        kept = [f"{r}/{n}" for r, n in zip(schedules[0], schedules[1], strict=True)]
        await conn.execute(q["registry_prune_schedules"], kept)


__all__ = ["sync_registry"]
