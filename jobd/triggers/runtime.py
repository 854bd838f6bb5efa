"""Wire triggers and schedules into the engine: workers, cron entries, states.

    registry = WorkerRegistry()
    async with pool.acquire() as conn:
        rt = await TriggerRuntime.create(spec, registry, pool, conn)   # checks the tables
    engine = Engine(pool, engine_config(spec, cron_entries(spec)), registry)
    rt.attach(engine)
    await engine.start(); await rt.start()
    ...
    await rt.stop(); await engine.stop()

Workers registered (names are the configuration's stable `worker_name`/`scheduler_name`):
a trigger's worker (its `timeout` enforced inside the worker so `on_error` can still run,
the engine's own timeout a backstop `ON_ERROR_GRACE_S` later; its `backoff`), its
scheduler, and each schedule's worker.

States (SPEC 1.2): `active`; `paused`: workers registered but named to
`Engine.set_paused_workers` so nothing of them is fetched (their jobs wait and run on
resume), and no cron entry; an engine without that method gets workers that snooze
instead (`PAUSED_SNOOZE_S`), so paused jobs still wait without using attempts; `deleted`:
nothing registered, no cron entry, and at `create` its jobs that are not running are
cancelled (one statement).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from jobd.actions.base import Action
from jobd.actions.build import ActionServices, build_action
from jobd.engine.config import CronEntry
from jobd.engine.jobs import JobSpec
from jobd.engine.registry import WorkerRegistry
from jobd.errors import JobdError
from jobd.model import Resource, Spec, Trigger
from jobd.sql import queries
from jobd.triggers.scheduler import scheduler_worker
from jobd.triggers.schedules import schedule_cron_entry, schedule_worker
from jobd.triggers.tables import ResolvedTable, TableCheckError, resolve_resources, resolve_table
from jobd.triggers.worker import trigger_backoff, trigger_worker

log = structlog.get_logger("jobd.triggers")

ON_ERROR_GRACE_S = 30.0  # engine backstop timeout beyond a trigger's own `timeout`
PAUSED_SNOOZE_S = 5.0


def scheduler_cron_entry(trigger: Trigger) -> CronEntry | None:
    """The cron entry of a trigger's scheduler (None: `scheduler_cron: false`)."""
    if trigger.scheduler_cron is None:
        return None
    return CronEntry(name=trigger.scheduler_name, expression=trigger.scheduler_cron,
                     job=scheduler_job(trigger), overlap="skip")  # fmt: skip


def scheduler_job(trigger: Trigger, stored_actor: dict[str, Any] | None = None) -> JobSpec:
    """A scheduler run's job; its unique key is the cron entry's (`cron:<name>`), so a
    programmatic run and a tick never leave two scheduler jobs pending."""
    return JobSpec(
        worker=trigger.scheduler_name,
        args={"actor": stored_actor} if stored_actor is not None else {},
        queue=trigger.scheduler_queue,
        priority=trigger.scheduler_priority,
        max_attempts=trigger.max_scheduler_attempts,
        uniq_key=f"cron:{trigger.scheduler_name}",
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
            if schedule.state == "active":
                entries.append(schedule_cron_entry(resource, schedule))
    return tuple(entries)


def worker_names(spec: Spec, state: str) -> list[str]:
    """Worker names of the triggers (worker and scheduler) and schedules in `state`."""
    names: list[str] = []
    for resource in spec.resources.values():
        for t in resource.triggers.values():
            if t.state == state:
                names += [t.worker_name, t.scheduler_name]
        names += [s.worker_name for s in resource.scheduled_actions.values() if s.state == state]
    return names


class TriggerRuntime:
    """The triggers and schedules of one configuration, as engine workers."""

    def __init__(
        self,
        spec: Spec,
        registry: WorkerRegistry,
        pool: Any,
        *,
        tables: dict[str, ResolvedTable] | None = None,
        services: ActionServices | None = None,
    ) -> None:
        self.spec = spec
        self.registry = registry
        self.pool = pool
        self.schema = spec.database.schema
        self.services = services or ActionServices(schema=self.schema)
        self.tables = dict(tables or {})
        self.engine: Any = None
        self._per_tenant: dict[tuple[str, str | None], ResolvedTable] = {}
        self._actions: dict[tuple[str, str], Action] = {}

    @classmethod
    async def create(
        cls,
        spec: Spec,
        registry: WorkerRegistry,
        pool: Any,
        conn: Any,
        *,
        services: ActionServices | None = None,
    ) -> TriggerRuntime:
        """Check the tables (TableCheckError, exit 2), build every action (a bad entrypoint
        fails here), register the workers, cancel the jobs of deleted triggers."""
        tables = await resolve_resources(conn, spec)
        rt = cls(spec, registry, pool, tables=tables, services=services)
        rt.build_actions()
        rt.register()
        await rt.cancel_deleted(conn)
        return rt

    def build_actions(self) -> None:
        for resource in self.spec.resources.values():
            for name, action in resource.actions.items():
                self._actions[(resource.name, name)] = build_action(resource, action, self.services)

    def action(self, resource: Resource, name: str) -> Action:
        key = (resource.name, name)
        if key not in self._actions:
            self._actions[key] = build_action(resource, resource.actions[name], self.services)
        return self._actions[key]

    def register(self) -> None:
        """Register every worker of active and paused triggers and schedules."""
        for resource in self.spec.resources.values():
            for t in resource.triggers.values():
                if t.state == "deleted":
                    continue
                backstop = t.timeout_s + ON_ERROR_GRACE_S if t.timeout_s else None
                self.registry.register(
                    t.worker_name, trigger_worker(self, resource, t), timeout_s=backstop,
                    backoff=trigger_backoff(t),
                )  # fmt: skip
                self.registry.register(t.scheduler_name, scheduler_worker(self, resource, t))
            for s in resource.scheduled_actions.values():
                if s.state != "deleted":
                    self.registry.register(
                        s.worker_name, schedule_worker(self, resource, s), timeout_s=s.timeout_s,
                        backoff=s.backoff.delay_s,
                    )  # fmt: skip

    def attach(self, engine: Any) -> None:
        """Remember the engine and tell it which workers are paused (before it starts, so
        their jobs are never fetched; they wait as available until the trigger is active)."""
        self.engine = engine
        engine.set_paused_workers(worker_names(self.spec, "paused"))

    async def start(self) -> None:
        """Nothing to start: the engine runs the registered workers."""

    async def stop(self) -> None:
        """Nothing runs on its own here; the engine stops the workers."""

    async def cancel_deleted(self, conn: Any) -> int:
        """Cancel the waiting jobs of deleted triggers and schedules (one statement)."""
        names = worker_names(self.spec, "deleted")
        if not names:
            return 0
        at = datetime.now(UTC).isoformat()
        entry = {"at": at, "attempt": 0, "error": "trigger_deleted", "kind": "cancel"}
        count: int = await conn.fetchval(queries(self.schema)["trigger_cancel_jobs"], names, entry)
        log.info("trigger.deleted", workers=names, cancelled=count)
        return count

    async def table_for(
        self, conn: Any, resource: Resource, tenant: str | None
    ) -> tuple[ResolvedTable, str]:
        """The resource's table and its SQL for `tenant`, resolved lazily when the start
        could not (schema strategy with no tenant known then)."""
        table = self.tables.get(resource.name)
        if table is None or not table.checked:
            key = (resource.name, tenant if table is None or table.tenant_schema else None)
            table = self._per_tenant.get(key)
            if table is None:
                table, problems = await resolve_table(conn, resource, tenant)
                if table is None or problems:
                    raise TableCheckError(problems)
                self._per_tenant[key] = table
        return table, table.sql(tenant)

    def resource(self, name: str) -> Resource:
        try:
            return self.spec.resources[name]
        except KeyError:
            raise JobdError(f"unknown resource {name!r}") from None


__all__ = ["TriggerRuntime", "cron_entries", "scheduler_job"]
