"""The one home of a trigger's and a schedule's job shape: which worker, queue, priority
and attempts, what goes into args, which unique key and hold.

Three writers put these jobs into the table, all from what is defined here:
- the scheduler's scan (`trigger_scan_enqueue`), with `worker_job(trigger)` as template,
  `common_args` and `key_prefix` as parameters; pk and tenant are added per row in SQL;
- the engine's cron, with the `CronEntry`s of `cron_entries` (scheduler and schedule jobs);
- the SQL API functions (functions.sql), from the registry rows that
  `jobd.triggers.sql_api` writes from these same templates.

The args of a trigger worker job: `{actor, input, extra, pk, tenant}`; its unique key:
`<worker_name>:<tenant, schema strategy only>:<jsonb array of the key values>`; its tags
the trigger's `tags` (a schedule's runs: the schedule's; scheduler and expansion jobs have
none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from jobd.engine.config import CronEntry
from jobd.engine.jobs import JobSpec
from jobd.model import Resource, Schedule, Spec, State, Trigger

# How a trigger's jobs get their tenant.
TenantMode = Literal["none", "attribute", "schema", "record"]


def tenant_mode(resource: Resource, trigger: Trigger | None) -> TenantMode:
    """none; attribute (a column, tenant given or scanned per tenant); schema (a schema per
    tenant); record (`use_tenant_from_record`: each row names its tenant)."""
    tenancy = resource.multitenancy
    if tenancy is None:
        return "none"
    if tenancy.strategy == "schema":
        return "schema"
    return "record" if trigger is not None and trigger.use_tenant_from_record else "attribute"


def worker_hold(trigger: Trigger) -> dict[str, float | None]:
    """Terminal states that keep blocking a row's next job: a discarded job, and a job
    whose last attempt failed and whose on_error handled it (`handled`: completed with its
    error kept), for `discard_cooldown`, so that a row the failure did not change rests
    instead of being sent again at every scan; with `trigger_once` a completed one while
    it is retained."""
    cooldown = trigger.discard_cooldown_s
    hold: dict[str, float | None] = {"discarded": cooldown, "handled": cooldown}
    if trigger.trigger_once:
        hold["completed"] = None
    return hold


def common_args(trigger: Trigger, stored_actor: Mapping[str, Any] | None) -> dict[str, Any]:
    """The args every worker job of the trigger shares (pk and tenant are added per row)."""
    return {
        "actor": dict(stored_actor) if stored_actor is not None else None,
        "input": dict(trigger.action_input),
        "extra": dict(trigger.extra_args),
    }


def worker_job(trigger: Trigger, stored_actor: Mapping[str, Any] | None = None) -> JobSpec:
    """The template of the trigger's worker jobs (no pk, tenant or unique key: per row)."""
    return JobSpec(
        worker=trigger.worker_name,
        args=common_args(trigger, stored_actor),
        queue=trigger.queue,
        priority=trigger.priority,
        max_attempts=trigger.max_attempts,
        uniq_hold=worker_hold(trigger),
        tags=trigger.tags,
    )


# A change-data event's expansion job (jobd.triggers.expand): its worker is the trigger's
# worker name with this suffix, in the trigger's scheduler queue. A lost expansion would
# lose the rows' jobs, so it is retried long (a database error), with Oban's backoff.
EXPAND_SUFFIX = "#events"
EXPAND_MAX_ATTEMPTS = 20


# A delete event's job has a key of its own: `<worker>:<tenant>:delete:[pk]` (the row's key
# with this after the prefix), so a row deleted while its insert job waits gets both.
DELETE_KEY = "delete:"


def expand_name(trigger: Trigger) -> str:
    """The worker name of the trigger's expansion jobs (`<worker_name>#events`)."""
    return trigger.worker_name + EXPAND_SUFFIX


def key_prefix(trigger: Trigger, tenant: str | None, mode: TenantMode) -> str:
    """`<worker_name>:<tenant>:`: the tenant only with the schema strategy (where the same
    key names a row of another table); a row of one table has one key whoever asks."""
    return f"{trigger.worker_name}:{tenant if mode == 'schema' and tenant else ''}:"


def scheduler_job(trigger: Trigger, stored_actor: Mapping[str, Any] | None = None) -> JobSpec:
    """A scheduler run's job; its unique key is the cron entry's (`cron:<name>`), so a
    programmatic run and a tick never leave two scheduler jobs pending."""
    return JobSpec(
        worker=trigger.scheduler_name,
        args={"actor": dict(stored_actor)} if stored_actor is not None else {},
        queue=trigger.scheduler_queue,
        priority=trigger.scheduler_priority,
        max_attempts=trigger.max_scheduler_attempts,
        uniq_key=f"cron:{trigger.scheduler_name}",
    )


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
        tags=schedule.tags,
    )


def tenant_run_job(
    resource: Resource,
    schedule: Schedule,
    fanout_args: Mapping[str, Any],
    tenant: str,
    fanout_id: int,
    cron_meta: Mapping[str, Any],
) -> JobSpec:
    """One tenant's run of a fan-out job: with `overlap: skip` keyed per tenant
    (`<worker_name>:<tenant>`), so a tenant's run is skipped while its previous one is
    incomplete, independently of the other tenants."""
    job = schedule_job(
        resource,
        schedule,
        input=fanout_args.get("input"),
        stored_actor=fanout_args.get("actor"),
        tenant=tenant,
    )
    key = f"{schedule.worker_name}:{tenant}" if schedule.overlap == "skip" else None
    return replace(job, uniq_key=key, meta={**cron_meta, "fanout_of": fanout_id})


def scheduler_cron_entry(trigger: Trigger) -> CronEntry | None:
    """The cron entry of a trigger's scheduler (None: `scheduler_cron: false`)."""
    if trigger.scheduler_cron is None:
        return None
    return CronEntry(
        name=trigger.scheduler_name,
        expression=trigger.scheduler_cron,
        job=scheduler_job(trigger),
        overlap="skip",
    )


def schedule_cron_entry(resource: Resource, schedule: Schedule) -> CronEntry | None:
    """The cron entry of a scheduled action (None: `cron: false`, runs only on request)."""
    if schedule.cron is None:
        return None
    return CronEntry(
        name=schedule.worker_name,
        expression=schedule.cron,
        job=schedule_job(resource, schedule),
        timezone=schedule.timezone,
        overlap=schedule.overlap,
        catch_up=schedule.catch_up,
        catch_up_window_s=schedule.catch_up_window_s,
    )


def cron_entries(spec: Spec) -> tuple[CronEntry, ...]:
    """Every cron entry of the configuration (active triggers' schedulers and schedules)."""
    entries: list[CronEntry] = []
    for resource in spec.resources.values():
        for trigger in resource.triggers.values():
            entry = scheduler_cron_entry(trigger) if trigger.state == "active" else None
            if entry is not None:
                entries.append(entry)
        for schedule in resource.scheduled_actions.values():
            tick = schedule_cron_entry(resource, schedule) if schedule.state == "active" else None
            if tick is not None:
                entries.append(tick)
    return tuple(entries)


def worker_names(spec: Spec, state: State) -> list[str]:
    """Worker names of the triggers (worker and scheduler) and schedules in `state`."""
    names: list[str] = []
    for resource in spec.resources.values():
        for t in resource.triggers.values():
            if t.state == state:
                names += [t.worker_name, t.scheduler_name]
                names += [expand_name(t)] if t.events else []
        names += [s.worker_name for s in resource.scheduled_actions.values() if s.state == state]
    return names


def worker_queues(spec: Spec) -> dict[str, str]:
    """The queue of every worker of the configuration's live (not deleted) triggers and
    schedules: where their waiting jobs belong."""
    queues: dict[str, str] = {}
    for resource in spec.resources.values():
        for t in resource.triggers.values():
            if t.state != "deleted":
                queues[t.worker_name] = t.queue
                queues[t.scheduler_name] = t.scheduler_queue
                if t.events:
                    queues[expand_name(t)] = t.scheduler_queue
        for s in resource.scheduled_actions.values():
            if s.state != "deleted":
                queues[s.worker_name] = s.queue
    return queues
