"""Expansion jobs: a big statement's change-data event, turned into its rows' jobs.

A database trigger (jobd.triggers.events) that sees more than `EXPAND_MIN_ROWS` matching
rows in one statement enqueues, in the writing transaction, ONE job of the worker
`<worker_name>#events` (in the trigger's scheduler queue) whose args carry the rows'
keys as array literals, one per key column (`k0`, `k1`, ...: the text of the column
type's array, exact for any type and the cheapest to collect; `tn` the rows' tenants
with attribute tenancy), `old` (the old rows of a delete, a JSON array), `tenant` (the
schema with schema tenancy), `event` and `rows`. Its worker, here, inserts the rows'
jobs in ONE statement (`event_expand`: the scan's INSERT over those arrays, ON CONFLICT
as the scan) and completes the expansion job in the same transaction, so a crash in between runs it
again and loses nothing (the unique keys keep a row to one job meanwhile).

The jobs it inserts are exactly those the trigger would have inserted itself (same args,
unique key, hold; `tests/integration/triggers/test_events.py`): collecting the keys
with `array_agg` costs the application's statement a fraction of inserting a job per
row (bench/README.md, "Change-data events").
"""

from __future__ import annotations

from typing import Any

import structlog

from jobd.engine.context import JobContext
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import Job
from jobd.engine.registry import Worker
from jobd.model import Resource, Trigger
from jobd.sql import queries
from jobd.triggers.deps import Deps
from jobd.triggers.jobs import DELETE_KEY, TenantMode, key_prefix, tenant_mode, worker_job
from jobd.triggers.sqlgen import fill
from jobd.triggers.tables import ResolvedTable

log = structlog.get_logger("jobd.triggers")
EXPAND_FIXED_PARAMS = 11  # $1..$11 of event_expand


def expand_sql(
    resource: Resource, trigger: Trigger, table: ResolvedTable, schema: str, *, delete: bool
) -> str:
    """`event_expand` filled for the trigger's table (its key columns) and event kind."""
    pk = table.primary_key
    mode = tenant_mode(resource, trigger)
    names = [f"k{i}" for i in range(len(pk))]
    if mode in ("attribute", "record"):
        names.append("tn")
    if delete:
        names.append("old")
    # The keys come as array literals (text) of the key columns' types, the tenants as
    # text[], the old rows as a JSON array.
    types = [f"{table.types[c]}[]" for c in pk] + ["text[]"] * ("tn" in names)
    arrays = [f"unnest(($1::jsonb ->> '{n}')::{t})" for n, t in zip(names, types, strict=False)]
    if delete:
        arrays.append("jsonb_array_elements($1::jsonb -> 'old')")
    # The row's tenant (attribute tenancy), else $10: the schema's (schema tenancy) or NULL.
    tenant = "coalesce(p.tn, $10::text)" if "tn" in names else "$10::text"
    parts = {
        "arrays": ", ".join(arrays),
        "names": ", ".join(names),
        "pk_object": ", ".join(
            f"${EXPAND_FIXED_PARAMS + 1 + i}::text, p.k{i}" for i in range(len(pk))
        ),
        "key_values": ", ".join(f"p.k{i}" for i in range(len(pk))),
        "job_tenant": tenant,
        "old": ", 'old', p.old" if delete else "",
    }
    return fill(queries(schema)["event_expand"], parts)


def expand_params(
    trigger: Trigger, table: ResolvedTable, schema: str, args: dict[str, Any], mode: TenantMode
) -> list[Any]:
    """The parameters of `expand_sql` for one expansion job's `args`."""
    job = worker_job(trigger)
    tenant = args.get("tenant")
    return [
        args,
        job.queue,
        job.worker,
        job.args,
        job.priority,
        job.max_attempts,
        job.uniq_hold,
        key_prefix(trigger, tenant, mode) + (DELETE_KEY if args["event"] == "delete" else ""),
        channel(schema, INSERT_CHANNEL),
        tenant,
        list(job.tags),
        *table.primary_key,
    ]


def expand_worker(deps: Deps, resource: Resource, trigger: Trigger) -> Worker:
    """The engine worker of the trigger's expansion jobs."""
    mode = tenant_mode(resource, trigger)

    async def run(job: Job, ctx: JobContext) -> None:
        args = dict(job.args)
        async with deps.pool.acquire() as conn, conn.transaction():
            table, _ = await deps.tables.table_for(conn, resource, args.get("tenant"))
            sql = expand_sql(
                resource, trigger, table, deps.schema, delete=args["event"] == "delete"
            )
            params = expand_params(trigger, table, deps.schema, args, mode)
            enqueued = await conn.fetchval(sql, *params)
            await ctx.complete_in(conn)
        log.info(
            "trigger.events_expanded",
            trigger=trigger.worker_name,
            change=args["event"],  # not `event`: structlog's own argument (a TypeError)
            tenant=args.get("tenant"),
            rows=args.get("rows"),
            enqueued=enqueued,
        )

    return run
