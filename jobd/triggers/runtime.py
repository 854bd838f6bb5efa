"""Wire a configuration's triggers and schedules into the engine: workers, states, the
SQL API's registry.

    registry = WorkerRegistry()
    async with pool.acquire() as conn:
        rt = await TriggerRuntime.create(spec, registry, pool, conn, services=services)
    engine = Engine(pool, engine_config(spec, cron_entries(spec)), registry)
    rt.attach(engine)
    await engine.start()

`create` checks the tables (`TableCheckError`, exit 2), builds every action (a bad
entrypoint fails here), registers the workers, cancels the jobs of deleted triggers,
moves waiting jobs whose trigger or schedule now names another queue, writes the SQL
API's registry, and installs the database triggers of `events:`
(jobd.triggers.eventsync). Workers registered (names are the configuration's stable
`worker_name`/`scheduler_name`): a trigger's worker (its `timeout` enforced inside the
worker so `on_error` can still run, the engine's own timeout a backstop
`ON_ERROR_GRACE_S` later; its `backoff`), its scheduler, and each schedule's worker. Each
gets the `Deps` it needs, not the runtime.

States (SPEC 1.2): `active`; `paused`: workers registered but named to
`Engine.set_paused_workers` so nothing of them is fetched (their jobs wait and run on
resume), and no cron entry; `deleted`: nothing registered, no cron entry, and at `create`
its jobs that are not running are cancelled (one statement).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from jobd.actions.build import Actions, ActionServices
from jobd.engine.engine import Engine
from jobd.engine.registry import WorkerRegistry
from jobd.model import Spec
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool
from jobd.triggers.api import Enqueuer
from jobd.triggers.deps import Deps
from jobd.triggers.eventsync import sync_events
from jobd.triggers.expand import expand_worker
from jobd.triggers.jobs import expand_name, worker_names, worker_queues
from jobd.triggers.scheduler import move_jobs, scheduler_worker
from jobd.triggers.schedules import schedule_worker
from jobd.triggers.sql_api import sync_registry
from jobd.triggers.tables import Tables
from jobd.triggers.worker import (
    trigger_backoff,
    trigger_batch,
    trigger_final_failure,
    trigger_worker,
)

log = structlog.get_logger("jobd.triggers")

ON_ERROR_GRACE_S = 30.0  # engine backstop timeout beyond a trigger's own `timeout`


class TriggerRuntime:
    """The triggers and schedules of one configuration, as engine workers."""

    def __init__(self, spec: Spec, registry: WorkerRegistry, deps: Deps) -> None:
        self.spec = spec
        self.registry = registry
        self.deps = deps

    @property
    def pool(self) -> Pool:
        return self.deps.pool

    @property
    def schema(self) -> str:
        return self.deps.schema

    def enqueuer(self) -> Enqueuer:
        """Programmatic enqueues of this configuration (`jobd.triggers.api`)."""
        return Enqueuer(self.spec, self.pool, self.schema)

    @classmethod
    async def create(
        cls,
        spec: Spec,
        registry: WorkerRegistry,
        pool: Pool,
        conn: Connection,
        *,
        services: ActionServices | None = None,
    ) -> TriggerRuntime:
        """The runtime of `spec`, checked against the database and registered (see module
        docs)."""
        schema = spec.database.schema
        tables = await Tables.check(conn, spec)
        actions = Actions(spec, services or ActionServices(schema=schema))
        rt = cls(spec, registry, Deps(pool, schema, tables, actions))
        rt.register()
        await rt.cancel_deleted(conn)
        await move_jobs(conn, schema, worker_queues(spec))
        # What the SQL functions (and so the CLI, the API and jobd.Client) read.
        await sync_registry(conn, spec)
        # The change-data triggers of `events:` (installed, updated, removed).
        await sync_events(conn, spec, tables)
        return rt

    def register(self) -> None:
        """Register every worker of active and paused triggers and schedules."""
        deps = self.deps
        for resource in self.spec.resources.values():
            for t in resource.triggers.values():
                if t.state == "deleted":
                    continue
                backstop = t.timeout_s + ON_ERROR_GRACE_S if t.timeout_s else None
                self.registry.register(
                    t.worker_name,
                    trigger_worker(deps, resource, t),
                    timeout_s=backstop,
                    backoff=trigger_backoff(t),
                    final_failure=trigger_final_failure(deps, resource, t),
                    batch=trigger_batch(deps, resource, t),
                )
                self.registry.register(t.scheduler_name, scheduler_worker(deps, resource, t))
                if t.events:  # a big statement's rows, as one job (jobd.triggers.expand)
                    self.registry.register(expand_name(t), expand_worker(deps, resource, t))
            for s in resource.scheduled_actions.values():
                if s.state != "deleted":
                    self.registry.register(
                        s.worker_name,
                        schedule_worker(deps, resource, s),
                        timeout_s=s.timeout_s,
                        backoff=s.backoff.delay_s,
                    )

    def attach(self, engine: Engine) -> None:
        """Tell the engine which workers are paused (before it starts, so their jobs are
        never fetched; they wait as available until the trigger is active)."""
        engine.set_paused_workers(worker_names(self.spec, "paused"))

    async def cancel_deleted(self, conn: Connection) -> int:
        """Cancel the waiting jobs of deleted triggers and schedules (one statement)."""
        names = worker_names(self.spec, "deleted")
        if not names:
            return 0
        at = datetime.now(UTC).isoformat()
        entry = {"at": at, "attempt": 0, "error": "trigger_deleted", "kind": "cancel"}
        count: int = await conn.fetchval(queries(self.schema)["trigger_cancel_jobs"], names, entry)
        log.info("trigger.deleted", workers=names, cancelled=count)
        return count
