"""The one internal API behind every way of asking for work: the CLI, the HTTP API, the
SQL functions and the Python client all call these.

    await run_trigger(rt, "orders", "process", {"id": 42}, actor={"id": 7})  # job id | None
    await run_triggers(rt, "orders", "process", [{"id": 1}, {"id": 2}])      # ids inserted
    await schedule_trigger(rt, "orders", "process")        # AshOban `schedule`: scan now
    await run_schedule(rt, "orders", "nightly_summary", input={"period": "week"})

`conn`: run inside the caller's transaction (a rollback enqueues nothing); default: a pool
connection. Programmatic trigger runs do not apply `where` when enqueueing: the worker
re-checks it and cancels a job whose row does not match (`trigger_no_longer_applies`),
as AshOban's `run_oban_trigger` does. The row must exist (else `RowNotFound`). The unique
key is the scheduler's, so a row with a waiting job gets no second one (None / left out).
Tenants: schema strategy: `tenant` required; attribute strategy: optional, a given one
must be the row's (else `RowNotFound`), a missing one is taken from the row.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jobd.actors import resolve_actor, store_actor_async
from jobd.engine.insert import INSERT_CHANNEL, channel, insert_jobs
from jobd.errors import JobdError, UsageError
from jobd.ident import is_identifier
from jobd.model import Resource, Schedule, Trigger
from jobd.triggers.runtime import scheduler_job
from jobd.triggers.scheduler import common_args, key_prefix, worker_uniq_hold
from jobd.triggers.schedules import schedule_job
from jobd.triggers.sqlgen import enqueue_keys_sql, tenant_mode

if TYPE_CHECKING:
    from jobd.triggers.runtime import TriggerRuntime


class RowNotFound(JobdError):
    """No row with the given primary key (in the given tenant)."""

    exit_code = 2


@contextlib.asynccontextmanager
async def _connection(rt: TriggerRuntime, conn: Any) -> AsyncIterator[Any]:
    if conn is not None:
        yield conn
    else:
        async with rt.pool.acquire() as acquired:
            yield acquired


def _trigger(
    rt: TriggerRuntime, resource: str | Resource, trigger: str | Trigger
) -> tuple[Resource, Trigger]:
    res = rt.resource(resource) if isinstance(resource, str) else resource
    if isinstance(trigger, Trigger):
        return res, trigger
    found = res.triggers.get(trigger)
    if found is None:
        raise UsageError(f"resource {res.name!r} has no trigger {trigger!r}")
    if found.state == "deleted":
        raise UsageError(f"trigger {res.name}.{trigger} is deleted")
    return res, found


def _check_tenant(resource: Resource, mode: str, tenant: str | None) -> None:
    if mode == "schema" and (tenant is None or not is_identifier(tenant)):
        raise UsageError(f"resource {resource.name!r} (schema tenancy) needs a valid tenant")
    if mode == "none" and tenant is not None:
        raise UsageError(f"resource {resource.name!r} is not multitenant: no tenant expected")


def _check_keys(pk_columns: Sequence[str], keys: Sequence[Mapping[str, Any]]) -> None:
    wanted = set(pk_columns)
    for key in keys:
        if not isinstance(key, Mapping) or set(key) != wanted:
            raise UsageError(
                f"primary key must name exactly {sorted(wanted)}, got "
                f"{sorted(key) if isinstance(key, Mapping) else type(key).__name__}"
            )


async def run_triggers(
    rt: TriggerRuntime,
    resource: str | Resource,
    trigger: str | Trigger,
    primary_keys: Sequence[Mapping[str, Any]],
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Any = None,
) -> list[int]:
    """Enqueue the trigger's worker for each row, in one statement; the ids inserted (rows
    that already have a job, or do not exist, get none)."""
    ids, _ = await _enqueue(rt, resource, trigger, primary_keys, actor, tenant, conn)
    return ids


async def run_trigger(
    rt: TriggerRuntime,
    resource: str | Resource,
    trigger: str | Trigger,
    primary_key: Mapping[str, Any],
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Any = None,
) -> int | None:
    """Enqueue one row's job; its id, or None when the row already has one."""
    ids, found = await _enqueue(rt, resource, trigger, [primary_key], actor, tenant, conn)
    if not found:
        raise RowNotFound(f"no row with primary key {dict(primary_key)} (tenant {tenant!r})")
    return ids[0] if ids else None


async def _enqueue(
    rt: TriggerRuntime,
    resource_ref: str | Resource,
    trigger_ref: str | Trigger,
    keys: Sequence[Mapping[str, Any]],
    actor: Mapping[str, Any] | None,
    tenant: str | None,
    conn: Any,
) -> tuple[list[int], int]:
    resource, trigger = _trigger(rt, resource_ref, trigger_ref)
    mode = tenant_mode(resource, trigger)
    _check_tenant(resource, mode, tenant)
    if not keys:
        return [], 0
    stored = await store_actor_async(trigger.actor_persister, resolve_actor(actor, None))
    async with _connection(rt, conn) as c:
        table, table_sql = await rt.table_for(c, resource, tenant)
        _check_keys(table.primary_key, keys)
        tenant_filter = tenant is not None and mode in ("attribute", "record")
        sql = enqueue_keys_sql(resource, table, table_sql, rt.schema, tenant_filter=tenant_filter)
        params: list[Any] = [
            trigger.worker_name, trigger.queue, trigger.priority, trigger.max_attempts,
            worker_uniq_hold(trigger), common_args(trigger, stored),
            key_prefix(trigger, tenant, mode), tenant, [dict(k) for k in keys],
            channel(rt.schema, INSERT_CHANNEL), *table.primary_key,
        ]  # fmt: skip
        if tenant_filter:
            params.append(tenant)
        row = await c.fetchrow(sql, *params)
    return list(row["ids"]), int(row["found"])


async def schedule_trigger(
    rt: TriggerRuntime,
    resource: str | Resource,
    trigger: str | Trigger,
    *,
    actor: Mapping[str, Any] | None = None,
    conn: Any = None,
) -> int | None:
    """Enqueue the trigger's scheduler now (AshOban `schedule`); None when a scheduler job
    is already waiting (the cron tick's and this one share their unique key)."""
    _, trig = _trigger(rt, resource, trigger)
    stored = await store_actor_async(trig.actor_persister, resolve_actor(actor, None))
    async with _connection(rt, conn) as c:
        ids = await insert_jobs(c, [scheduler_job(trig, stored)], schema=rt.schema)
    return ids[0] if ids else None


async def run_schedule(
    rt: TriggerRuntime,
    resource: str | Resource,
    name: str,
    *,
    input: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Any = None,
) -> int:
    """Run a scheduled action now (with `input` merged over `action_input`); on a
    multitenant resource once per tenant, or only for `tenant`. Manual runs ignore
    `overlap`. Returns the job id (the fan-out job's when it runs per tenant)."""
    res = rt.resource(resource) if isinstance(resource, str) else resource
    schedule: Schedule | None = res.scheduled_actions.get(name)
    if schedule is None or schedule.state == "deleted":
        raise UsageError(f"resource {res.name!r} has no scheduled action {name!r}")
    if tenant is not None and res.multitenancy is None:
        raise UsageError(f"resource {res.name!r} is not multitenant: no tenant expected")
    stored = await store_actor_async(schedule.actor_persister, resolve_actor(actor, None))
    job = schedule_job(res, schedule, input=input, stored_actor=stored, tenant=tenant)
    async with _connection(rt, conn) as c:
        ids = await insert_jobs(c, [job], schema=rt.schema)
    return ids[0]
