"""Keep the SQL API's registry in step with the configuration.

The SQL functions `run_trigger` / `run_triggers` / `run_schedule` (functions.sql) need no
YAML: they read `trigger_registry` and `schedule_registry`, which `sync_registry` rewrites
from a Spec: at `jobd run` (start and reload) and at `jobd migrate -c CONFIG`, so an
application can enqueue before the first daemon starts. One transaction, under a lock, so
a caller never sees half a configuration and two writers never interleave.

A registry row holds a trigger's job templates as `jobd.triggers.jobs` describes them
(worker and scheduler: worker name, queue, priority, attempts, unique hold, args) and how
to find its table. Each table is resolved here, on the writer's connection (its
search_path), so the functions, whose search_path is pinned, address the same table the
daemon scans. Python actor persisters cannot run in SQL: for them the SQL path stores the
actor whole (`jobd.triggers.api` runs their `store` before calling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from jobd.common.jsontext import json_text
from jobd.model import ActorPersister, Resource, Spec, State
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.sql.ident import quote_ident, quote_qualified
from jobd.triggers.jobs import TenantMode, schedule_job, scheduler_job, tenant_mode, worker_job


@dataclass(frozen=True)
class TriggerRow:
    """One row of `trigger_registry` (the field names are its column names)."""

    resource: str
    trigger: str
    state: State
    worker_name: str
    scheduler_name: str
    queue: str
    scheduler_queue: str
    priority: int
    scheduler_priority: int
    max_attempts: int
    max_scheduler_attempts: int
    uniq_hold: dict[str, float | None]
    table_schema: str | None  # None: the tenant's schema (strategy schema), or not found
    table_name: str
    primary_key: list[str] | None  # None: read from the catalog at call time
    tenant_mode: TenantMode
    tenant_attribute: str | None
    actor_store: list[str] | None  # None: the whole actor
    default_actor: dict[str, Any] | None
    action_input: dict[str, Any]
    extra_args: dict[str, Any]


@dataclass(frozen=True)
class ScheduleRow:
    """One row of `schedule_registry`."""

    resource: str
    name: str
    state: State
    worker_name: str
    queue: str
    priority: int
    max_attempts: int
    multitenant: bool
    actor_store: list[str] | None
    default_actor: dict[str, Any] | None
    action_input: dict[str, Any]


def _store_fields(persister: ActorPersister | None) -> list[str] | None:
    """The fields a job keeps of an actor; None: the whole actor."""
    if persister is None or persister.python is not None or persister.store is None:
        return None
    return list(persister.store)


async def _table_schema(conn: Connection, resource: Resource) -> str | None:
    """The schema the resource's table is in (None: the tenant's, or not found)."""
    if resource.multitenancy is not None and resource.multitenancy.strategy == "schema":
        return None
    if resource.table_schema:
        return resource.table_schema
    found: str | None = await conn.fetchval(
        queries()["registry_resolve_table"], quote_ident(resource.table_name)
    )
    return found


async def _primary_key(conn: Connection, resource: Resource, schema: str | None) -> Any:
    if resource.primary_key:
        return list(resource.primary_key)
    if schema is None:
        return None
    table = quote_qualified(schema, resource.table_name)
    row = await conn.fetchrow(queries()["trigger_table_info"], table)
    return list(row["primary_key"]) if row is not None and row["primary_key"] else None


async def trigger_rows(conn: Connection, spec: Spec) -> list[TriggerRow]:
    rows: list[TriggerRow] = []
    for resource in spec.resources.values():
        schema = await _table_schema(conn, resource)
        pk = await _primary_key(conn, resource, schema)
        attribute = resource.multitenancy.attribute if resource.multitenancy else None
        for t in resource.triggers.values():
            work, scan = worker_job(t), scheduler_job(t)
            rows.append(
                TriggerRow(
                    resource=resource.name,
                    trigger=t.name,
                    state=t.state,
                    worker_name=work.worker,
                    scheduler_name=scan.worker,
                    queue=work.queue,
                    scheduler_queue=scan.queue,
                    priority=work.priority,
                    scheduler_priority=scan.priority,
                    max_attempts=work.max_attempts,
                    max_scheduler_attempts=scan.max_attempts,
                    uniq_hold=work.uniq_hold,
                    table_schema=schema,
                    table_name=resource.table_name,
                    primary_key=pk,
                    tenant_mode=tenant_mode(resource, t),
                    tenant_attribute=attribute,
                    actor_store=_store_fields(t.actor_persister),
                    default_actor=None if t.default_actor is None else dict(t.default_actor),
                    action_input=work.args["input"],
                    extra_args=work.args["extra"],
                )
            )
    return rows


def schedule_rows(spec: Spec) -> list[ScheduleRow]:
    rows: list[ScheduleRow] = []
    for resource in spec.resources.values():
        for s in resource.scheduled_actions.values():
            job = schedule_job(resource, s)
            rows.append(
                ScheduleRow(
                    resource=resource.name,
                    name=s.name,
                    state=s.state,
                    worker_name=job.worker,
                    queue=job.queue,
                    priority=job.priority,
                    max_attempts=job.max_attempts,
                    multitenant=resource.multitenancy is not None,
                    actor_store=_store_fields(s.actor_persister),
                    default_actor=None if s.default_actor is None else dict(s.default_actor),
                    action_input=job.args["input"],
                )
            )
    return rows


async def sync_registry(conn: Connection, spec: Spec) -> None:
    """Make the registry tables describe exactly `spec`'s triggers and schedules (one
    transaction; nested in the caller's when there is one)."""
    q = queries(spec.database.schema)
    triggers = json_text([asdict(row) for row in await trigger_rows(conn, spec)])
    schedules = json_text([asdict(row) for row in schedule_rows(spec)])
    async with conn.transaction():
        await conn.execute(q["registry_lock"])
        await conn.execute(q["registry_clear_triggers"])
        await conn.execute(q["registry_insert_triggers"], triggers)
        await conn.execute(q["registry_clear_schedules"])
        await conn.execute(q["registry_insert_schedules"], schedules)
