"""Scheduled actions (SPEC 1.3): cron entries for the engine's cron, and their worker.

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

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from jobd.actions.base import ActionContext
from jobd.actors import lookup_actor, store_actor
from jobd.engine.config import CronEntry
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import Job, JobContext, JobSpec
from jobd.model import Resource, Schedule
from jobd.tenants import list_tenants

if TYPE_CHECKING:
    from jobd.triggers.runtime import TriggerRuntime

log = structlog.get_logger("jobd.triggers")


def fans_out(resource: Resource) -> bool:
    """True when a schedule of `resource` runs once per tenant."""
    return resource.multitenancy is not None


def schedule_job(
    resource: Resource,
    schedule: Schedule,
    *,
    input: Mapping[str, Any] | None = None,
    stored_actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> JobSpec:
    """The job of one run (a tick, or `run_schedule`): a fan-out job when the resource is
    multitenant and no tenant is given, else the run itself."""
    args: dict[str, Any] = {
        "input": {**schedule.action_input, **(input or {})},
        "actor": dict(stored_actor) if stored_actor is not None else None,
        "tenant": tenant,
    }
    if fans_out(resource) and tenant is None:
        args["fanout"] = True
    return JobSpec(
        worker=schedule.worker_name,
        args=args,
        queue=schedule.queue,
        priority=schedule.priority,
        max_attempts=schedule.max_attempts,
    )


def schedule_cron_entry(resource: Resource, schedule: Schedule) -> CronEntry:
    return CronEntry(
        name=schedule.worker_name,
        expression=schedule.cron,
        job=schedule_job(resource, schedule),
        timezone=schedule.timezone,
        overlap=schedule.overlap,
        catch_up=schedule.catch_up,
        catch_up_window_s=schedule.catch_up_window_s,
    )


def schedule_worker(rt: TriggerRuntime, resource: Resource, schedule: Schedule) -> Any:
    """The engine worker of a schedule's jobs (ticks, fan-outs and per-tenant runs)."""

    async def run(job: Job, ctx: JobContext) -> None:
        if job.args.get("fanout"):
            await _fan_out(rt, resource, schedule, job, ctx)
        else:
            await _run(rt, resource, schedule, job, ctx)

    return run


async def _fan_out(
    rt: TriggerRuntime, resource: Resource, schedule: Schedule, job: Job, ctx: JobContext
) -> None:
    schema_strategy = (
        resource.multitenancy is not None and resource.multitenancy.strategy == "schema"
    )
    async with rt.pool.acquire() as conn, conn.transaction():
        tenants = await list_tenants(schedule.list_tenants, conn, identifiers=schema_strategy)
        specs = []
        for tenant in tenants:
            spec = schedule_job(
                resource, schedule, input=job.args.get("input"),
                stored_actor=job.args.get("actor"), tenant=tenant,
            )  # fmt: skip
            key = f"{schedule.worker_name}:{tenant}" if schedule.overlap == "skip" else None
            meta = {k: v for k, v in job.meta.items() if k in ("cron", "cron_tick")}
            specs.append(replace(spec, uniq_key=key, meta={**meta, "fanout_of": job.id}))
        ids = await insert_jobs(conn, specs, schema=rt.schema)
        if not await ctx.complete_in(conn):
            raise RuntimeError(f"job {job.id}: claim lost during fan-out, rolled back")
    log.info(
        "schedule.fanout", schedule=schedule.worker_name, tenants=len(tenants), enqueued=len(ids)
    )


async def _run(
    rt: TriggerRuntime, resource: Resource, schedule: Schedule, job: Job, ctx: JobContext
) -> None:
    tenant = job.args.get("tenant")
    logger = log.bind(
        job_id=job.id, resource=resource.name, schedule=schedule.name, tenant=tenant,
        attempt=job.attempt,
    )  # fmt: skip
    async with rt.pool.acquire() as conn, conn.transaction():
        stored = job.args.get("actor")
        if stored is None and schedule.default_actor is not None:
            stored = store_actor(schedule.actor_persister, schedule.default_actor)
        actor = await lookup_actor(schedule.actor_persister, stored, conn)
        table_sql = None
        if tenant is not None or not fans_out(resource):
            _, table_sql = await rt.table_for(conn, resource, tenant)
        if schedule.debug:
            logger.info("schedule.start", actor=actor, input=job.args.get("input"))
        actx = ActionContext(
            job=job, resource=resource.name, conn=conn, log=logger, schedule=schedule.name,
            actor=actor, tenant=tenant, input=job.args.get("input") or {}, table_sql=table_sql,
        )  # fmt: skip
        await rt.action(resource, schedule.action).run(actx)
        if not await ctx.complete_in(conn):
            raise RuntimeError(f"job {job.id}: claim lost, rolled back")
    if schedule.debug:
        logger.info("schedule.complete")
