"""Keep the SQL API's registry in step with the configuration.

The SQL functions `run_trigger` / `run_triggers` / `run_schedule` (functions.sql) need no
YAML: they read the `registry` table, which `sync_registry` rewrites from a Spec: at `jobd
run` (start and reload) and at `jobd migrate -c CONFIG`, so an application can enqueue
before the first daemon starts. One transaction, under a lock, so a caller never sees
half a configuration and two writers never interleave.

A registry row holds the job templates of a trigger (its worker's and its scheduler's) or
of a scheduled action, exactly as `jobd.triggers.jobs` builds them (the one description
the Python paths and the SQL functions both read), and how to find its table. Each table
is resolved here, on the writer's connection (its search_path), so the functions, whose
search_path is pinned, address the same table the daemon scans. Python actor persisters
cannot run in SQL: for them the SQL path stores the actor whole (`jobd.triggers.api` runs
their `store` before calling).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from jobd.common.jsontext import json_text
from jobd.engine.jobs import JobSpec
from jobd.model import ActorPersister, Resource, Schedule, Spec, State, Trigger
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.sql.ident import quote_ident, quote_qualified
from jobd.triggers.jobs import (
    TenantMode,
    schedule_job,
    scheduler_job,
    tenant_mode,
    worker_job,
)


@dataclass(frozen=True)
class RegistryRow:
    """One row of the `registry` table (the field names are its column names)."""

    resource: str
    kind: Literal["trigger", "schedule"]
    name: str
    state: State
    job: dict[str, Any]  # template: the trigger's worker job, or the schedule's run
    scheduler_job: dict[str, Any] | None  # template: a trigger's scheduler job
    table_schema: str | None  # None: the tenant's schema (strategy schema), or not found
    table_name: str
    primary_key: list[str] | None  # None: read from the catalog at call time
    tenant_mode: TenantMode
    tenant_attribute: str | None
    actor_store: list[str] | None  # None: the whole actor
    default_actor: dict[str, Any] | None


def template(job: JobSpec) -> dict[str, Any]:
    """A job as a registry template (what functions.sql's `_insert_job` reads)."""
    keys = ("worker", "queue", "priority", "max_attempts", "uniq_key", "uniq_hold", "args", "tags")
    return {key: value for key, value in asdict(job).items() if key in keys}


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


async def registry_rows(conn: Connection, spec: Spec) -> list[RegistryRow]:
    """Every trigger and scheduled action of `spec` as registry rows."""
    rows: list[RegistryRow] = []
    for resource in spec.resources.values():
        schema = await _table_schema(conn, resource)
        table: Mapping[str, Any] = {
            "table_schema": schema,
            "table_name": resource.table_name,
            "primary_key": await _primary_key(conn, resource, schema),
            "tenant_attribute": resource.multitenancy.attribute if resource.multitenancy else None,
        }
        named: list[Trigger | Schedule] = [
            *resource.triggers.values(),
            *resource.scheduled_actions.values(),
        ]
        for item in named:
            trigger = item if isinstance(item, Trigger) else None
            rows.append(
                RegistryRow(
                    resource=resource.name,
                    kind="schedule" if trigger is None else "trigger",
                    name=item.name,
                    state=item.state,
                    job=template(
                        schedule_job(resource, item)
                        if isinstance(item, Schedule)
                        else worker_job(item)
                    ),
                    scheduler_job=None if trigger is None else template(scheduler_job(trigger)),
                    tenant_mode=tenant_mode(resource, trigger),
                    actor_store=_store_fields(item.actor_persister),
                    default_actor=None if item.default_actor is None else dict(item.default_actor),
                    **table,
                )
            )
    return rows


async def sync_registry(conn: Connection, spec: Spec) -> tuple[int, int]:
    """Make the registry describe exactly `spec`'s triggers and scheduled actions (one
    transaction; nested in the caller's when there is one). Returns how many triggers and
    scheduled actions it now holds."""
    q = queries(spec.database.schema)
    rows = await registry_rows(conn, spec)
    async with conn.transaction():
        await conn.execute(q["registry_lock"])
        await conn.execute(q["registry_clear"])
        await conn.execute(q["registry_insert"], json_text([asdict(row) for row in rows]))
    triggers = sum(row.kind == "trigger" for row in rows)
    return triggers, len(rows) - triggers
