"""Test helpers for jobd's users: run a configuration in the calling process against a test
database, then ask what it would do and what it did.

    async with await JobdTest.start("jobd.yaml", database_url) as jobd:
        await jobd.assert_would_schedule("orders", "process", {"id": 42})
        ran = await jobd.schedule_and_drain()     # the schedulers once, then every job
        assert ran.completed == 3
        await jobd.assert_triggered("orders", "process", {"id": 42}, state="completed")

`drain()` is Oban's `drain_queue` and `schedule_and_drain()` AshOban's
`schedule_and_run_triggers`: nothing runs in the background, each call does its work in
the calling task, through the same code as `jobd run` (the engine's drain: stage what is
due, claim, run, ack), and returns. The pytest plugin (`jobd.testing.plugin`, registered
through the `pytest11` entry point) gives each test a fresh database with jobd's schema.
docs/testing.md shows a worked example.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jobd.actions.build import ActionServices
from jobd.actions.http import HttpClient
from jobd.config import load_config, load_config_text
from jobd.engine.drain import drain
from jobd.engine.registry import WorkerRegistry
from jobd.errors import JobdError
from jobd.model import Resource, Spec, Trigger
from jobd.sql import queries
from jobd.sql.db import create_pool
from jobd.sql.driver import Pool
from jobd.sql.migrate import migrate
from jobd.testing.rows import row_matches
from jobd.triggers.api import Enqueuer
from jobd.triggers.runtime import TriggerRuntime

__all__ = ["Drained", "JobdTest", "RanJob"]


@dataclasses.dataclass(frozen=True)
class RanJob:
    """A job that ran in a drain, as it stands after it: `state` is `completed`,
    `retryable` (it failed and will be retried), `discarded`, `cancelled`, ..."""

    id: int
    worker: str
    queue: str
    state: str
    attempt: int
    args: Mapping[str, Any]
    errors: Sequence[Mapping[str, Any]]

    @property
    def pk(self) -> Mapping[str, Any] | None:
        """The row's primary key (a trigger's job), else None."""
        pk = self.args.get("pk")
        return pk if isinstance(pk, Mapping) else None


@dataclasses.dataclass(frozen=True)
class Drained:
    """What a drain ran: every job that had an attempt in it, and the attempts' outcomes
    counted as the engine counts them."""

    jobs: tuple[RanJob, ...]
    outcomes: Mapping[str, int]

    @property
    def completed(self) -> int:
        return self.outcomes.get("completed", 0)

    @property
    def failed(self) -> int:
        """Attempts that failed: retried later or discarded."""
        return self.outcomes.get("retried", 0) + self.outcomes.get("discarded", 0)

    def of(self, resource: str, trigger: str | None = None) -> list[RanJob]:
        """The jobs of a resource's triggers and schedules (of one trigger's worker)."""
        if trigger:
            return [j for j in self.jobs if j.worker == f"{resource}.{trigger}"]
        return [j for j in self.jobs if j.worker.startswith(f"{resource}.")]


class JobdTest:
    """A configuration's triggers and schedules, registered in this process against a
    database (see the module docs). Start with `await JobdTest.start(...)`, end with
    `close()` or `async with`."""

    def __init__(
        self, spec: Spec, pool: Pool, runtime: TriggerRuntime, http: HttpClient, owns_pool: bool
    ) -> None:
        self.spec, self.pool, self.runtime = spec, pool, runtime
        self._http, self._owns_pool = http, owns_pool
        self.client = Enqueuer(spec, pool, runtime.schema)  # run_trigger, schedule, ...

    @classmethod
    async def start(
        cls,
        config: str | Path,
        database_url: str,
        *,
        env: Mapping[str, str] | None = None,
        migrate_schema: bool = True,
    ) -> JobdTest:
        """Load `config` (a file path, or the YAML text itself when it has a newline),
        migrate jobd's schema into the database at `database_url` (unless told not to),
        and register the configuration's workers. The tables the configuration names must
        exist: create them first. `env` fills `${VAR}` (default: the process's)."""
        spec = _load(config, env)
        pool = await create_pool(database_url, min_size=1, max_size=8)
        try:
            return await cls.on_pool(spec, pool, migrate_schema=migrate_schema, owns_pool=True)
        except BaseException:
            await pool.close()
            raise

    @classmethod
    async def on_pool(
        cls, spec: Spec, pool: Pool, *, migrate_schema: bool = True, owns_pool: bool = False
    ) -> JobdTest:
        """`start` for a configuration already loaded, on a pool of the caller's (closed
        by `close()` only when `owns_pool`)."""
        http = HttpClient()
        try:
            await http.start()
            services = ActionServices(http=http, schema=spec.database.schema)
            async with pool.acquire() as conn:
                if migrate_schema:
                    await migrate(conn, spec.database.schema)
                runtime = await TriggerRuntime.create(
                    spec, WorkerRegistry(), pool, conn, services=services
                )
        except BaseException:
            await http.close()
            raise
        return cls(spec, pool, runtime, http, owns_pool)

    async def close(self) -> None:
        await self._http.close()
        if self._owns_pool:
            await self.pool.close()

    async def __aenter__(self) -> JobdTest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- running -----------------------------------------------------------------------

    async def schedule_triggers(
        self, resource: str | None = None, trigger: str | None = None
    ) -> int:
        """Enqueue the scheduler run of every active trigger with a `scheduler_cron` (of
        `resource`), as its cron would, or of the one trigger named (cron or not);
        `drain()` then runs the scans and the jobs they enqueue. Returns how many
        scheduler runs were enqueued."""
        count = 0
        for res, trig in self._triggers(resource, trigger):
            if await self.client.schedule_trigger(res.name, trig.name) is not None:
                count += 1
        return count

    async def drain(self, queues: Sequence[str] | None = None, timeout_s: float = 30.0) -> Drained:
        """Run every available job (of `queues`) now, in this task, until none is left
        (jobs that a run enqueues run too; a retry waits for its backoff, so it does not).
        A scheduled job whose time has come runs; one in the future does not."""
        started = await self.pool.fetchval("SELECT clock_timestamp()")
        counts = await drain(
            self.pool,
            self.runtime.registry,
            schema=self.runtime.schema,
            queues=queues,
            timeout_s=timeout_s,
        )
        sql = queries(self.runtime.schema)["testing_ran_since"]
        rows = await self.pool.fetch(sql, started)
        return Drained(
            jobs=tuple(_ran(row) for row in rows),
            outcomes={str(kind): n for kind, n in counts.items()},
        )

    async def schedule_and_drain(
        self, resource: str | None = None, trigger: str | None = None
    ) -> Drained:
        """`schedule_triggers`, then `drain` (AshOban's `schedule_and_run_triggers`)."""
        await self.schedule_triggers(resource, trigger)
        return await self.drain()

    # -- asking ------------------------------------------------------------------------

    async def would_schedule(
        self, resource: str, trigger: str, pk: Mapping[str, Any], *, tenant: str | None = None
    ) -> bool:
        """Whether the row matches the trigger's `where` (and its read's) now and has no
        job holding it: its scheduler would enqueue a job for it."""
        res, trig = self._trigger(resource, trigger)
        if not await row_matches(self.runtime, res, trig, pk, tenant):
            return False
        held = await self._jobs(res, trig, pk, tenant, holding=True)
        return not held

    async def assert_would_schedule(
        self, resource: str, trigger: str, pk: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        if not await self.would_schedule(resource, trigger, pk, tenant=tenant):
            why = await self._why_not(resource, trigger, pk, tenant)
            raise AssertionError(f"{resource}.{trigger} would not schedule row {_key(pk)}: {why}")

    async def refute_would_schedule(
        self, resource: str, trigger: str, pk: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        if await self.would_schedule(resource, trigger, pk, tenant=tenant):
            raise AssertionError(
                f"{resource}.{trigger} would schedule row {_key(pk)}: it matches and no job"
                " holds it"
            )

    async def jobs_of(
        self, resource: str, trigger: str, pk: Mapping[str, Any], *, tenant: str | None = None
    ) -> list[RanJob]:
        """Every job the row has had from this trigger (while the pruner keeps them)."""
        res, trig = self._trigger(resource, trigger)
        return await self._jobs(res, trig, pk, tenant, holding=False)

    async def assert_triggered(
        self,
        resource: str,
        trigger: str,
        pk: Mapping[str, Any],
        *,
        state: str | None = None,
        tenant: str | None = None,
    ) -> RanJob:
        """The row has a job of this trigger (in `state`, when given); returns the newest."""
        found = await self.jobs_of(resource, trigger, pk, tenant=tenant)
        wanted = [j for j in found if state is None or j.state == state]
        if not wanted:
            states = ", ".join(f"{j.id}: {j.state}" for j in found) or "none"
            in_state = f" in state {state!r}" if state else ""
            raise AssertionError(
                f"{resource}.{trigger}: row {_key(pk)} has no job{in_state} (its jobs: {states})"
            )
        return wanted[-1]

    async def refute_triggered(
        self, resource: str, trigger: str, pk: Mapping[str, Any], *, tenant: str | None = None
    ) -> None:
        found = await self.jobs_of(resource, trigger, pk, tenant=tenant)
        if found:
            states = ", ".join(f"{j.id}: {j.state}" for j in found)
            raise AssertionError(f"{resource}.{trigger}: row {_key(pk)} has jobs ({states})")

    # -- helpers -----------------------------------------------------------------------

    def _trigger(self, resource: str, trigger: str) -> tuple[Resource, Trigger]:
        res = self._resource(resource)
        trig = res.triggers.get(trigger)
        if trig is None or trig.state == "deleted":
            known = ", ".join(n for n, t in res.triggers.items() if t.state != "deleted")
            raise JobdError(f"resource {resource!r} has no trigger {trigger!r}; known: {known}")
        return res, trig

    def _resource(self, name: str) -> Resource:
        res = self.spec.resources.get(name)
        if res is None:
            known = ", ".join(self.spec.resources)
            raise JobdError(f"unknown resource {name!r}; known: {known}")
        return res

    def _triggers(
        self, resource: str | None, trigger: str | None
    ) -> list[tuple[Resource, Trigger]]:
        if resource is not None and trigger is not None:
            return [self._trigger(resource, trigger)]
        if resource is not None:
            self._resource(resource)
        return [
            (res, trig)
            for res in self.spec.resources.values()
            if resource is None or res.name == resource
            for trig in res.triggers.values()
            if trig.state == "active" and trig.scheduler_cron
        ]

    async def _jobs(
        self,
        res: Resource,
        trig: Trigger,
        pk: Mapping[str, Any],
        tenant: str | None,
        *,
        holding: bool,
    ) -> list[RanJob]:
        sql = queries(self.runtime.schema)["testing_row_jobs"]
        rows = await self.pool.fetch(sql, trig.worker_name, dict(pk), tenant, holding)
        return [_ran(row) for row in rows]

    async def _why_not(
        self, resource: str, trigger: str, pk: Mapping[str, Any], tenant: str | None
    ) -> str:
        res, trig = self._trigger(resource, trigger)
        if not await row_matches(self.runtime, res, trig, pk, tenant):
            return f"the row does not exist or does not match `where: {trig.where}`"
        held = await self._jobs(res, trig, pk, tenant, holding=True)
        return "a job holds it: " + ", ".join(f"{j.id} ({j.state})" for j in held)


def _load(config: str | Path, env: Mapping[str, str] | None) -> Spec:
    if isinstance(config, str) and "\n" in config:
        return load_config_text(config, "<test config>", env)
    return load_config(config, env)


def _ran(row: Any) -> RanJob:
    return RanJob(
        id=row["id"],
        worker=row["worker"],
        queue=row["queue"],
        state=row["state"],
        attempt=row["attempt"],
        args=row["args"] or {},
        errors=list(row["errors"] or []),
    )


def _key(pk: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in pk.items())
