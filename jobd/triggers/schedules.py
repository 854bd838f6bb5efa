"""Scheduled actions (SPEC 1.3): the worker of their jobs (the jobs themselves and their
cron entries are described in `jobd.triggers.jobs`).

Each active schedule is one `CronEntry` named after its `worker_name` (5 or 6 fields,
`timezone`, `overlap`, `catch_up`, `catch_up_window`): the engine's cron enqueues each tick
exactly once across nodes (ledger row + insert in one transaction) and, with `overlap:
skip`, not while the previous run is incomplete. Paused and deleted schedules get no entry.

Tenants: on a resource with `multitenancy`, the tick's job is a fan-out: it resolves
`list_tenants` and enqueues one job per tenant (same worker, `args.tenant` set) in the
transaction that completes it; with `overlap: skip` each tenant's job has the unique key
`<worker_name>:<tenant>`, so a tenant's run is skipped while its previous one is
incomplete, independently of the other tenants. Without tenancy the tick's job runs the
action itself.

A run: one transaction: look up the actor (the stored one, else `default_actor`), run the
action with `ctx.schedule`, `ctx.input` (`action_input`, merged with a programmatic run's
input) and `ctx.tenant`, then `complete_in` - the action's writes through `ctx.conn` and the
job's completion commit together.
"""

from __future__ import annotations

import structlog

from jobd.actions.base import ActionContext
from jobd.engine.context import JobContext
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import Job
from jobd.engine.registry import Worker
from jobd.model import Resource, Schedule
from jobd.triggers.actors import lookup_actor, store_actor
from jobd.triggers.deps import Deps, attempt_logger
from jobd.triggers.jobs import fans_out, tenant_run_job
from jobd.triggers.tenants import list_tenants

log = structlog.get_logger("jobd.triggers")


def schedule_worker(deps: Deps, resource: Resource, schedule: Schedule) -> Worker:
    """The engine worker of a schedule's jobs (ticks, fan-outs and per-tenant runs)."""

    async def run(job: Job, ctx: JobContext) -> None:
        if job.args.get("fanout"):
            await _fan_out(deps, resource, schedule, job, ctx)
        else:
            await _run(deps, resource, schedule, job, ctx)

    return run


async def _fan_out(
    deps: Deps, resource: Resource, schedule: Schedule, job: Job, ctx: JobContext
) -> None:
    schema_strategy = (
        resource.multitenancy is not None and resource.multitenancy.strategy == "schema"
    )
    cron_meta = {k: v for k, v in job.meta.items() if k in ("cron", "cron_tick")}
    async with deps.pool.acquire() as conn, conn.transaction():
        tenants = await list_tenants(schedule.list_tenants, conn, identifiers=schema_strategy)
        specs = [
            tenant_run_job(resource, schedule, job.args, tenant, job.id, cron_meta)
            for tenant in tenants
        ]
        ids = await insert_jobs(conn, specs, schema=deps.schema)
        await ctx.complete_in(conn)
    log.info(
        "schedule.fanout", schedule=schedule.worker_name, tenants=len(tenants), enqueued=len(ids)
    )


async def _run(
    deps: Deps, resource: Resource, schedule: Schedule, job: Job, ctx: JobContext
) -> None:
    tenant = job.args.get("tenant")
    logger = attempt_logger(job, resource.name, schedule=schedule.name)
    async with deps.pool.acquire() as conn, conn.transaction():
        stored = job.args.get("actor")
        if stored is None and schedule.default_actor is not None:
            stored = store_actor(schedule.actor_persister, schedule.default_actor)
        actor = await lookup_actor(schedule.actor_persister, stored, conn)
        table_sql = None
        if tenant is not None or not fans_out(resource):
            _, table_sql = await deps.tables.table_for(conn, resource, tenant)
        if schedule.debug:
            logger.info("schedule.start", actor=actor, input=job.args.get("input"))
        actx = ActionContext(
            job=job,
            resource=resource.name,
            conn=conn,
            log=logger,
            schedule=schedule.name,
            actor=actor,
            tenant=tenant,
            input=job.args.get("input") or {},
            table_sql=table_sql,
        )
        await deps.actions.get(resource, schedule.action).run(actx)
        await ctx.complete_in(conn)
    if schedule.debug:
        logger.info("schedule.complete")
