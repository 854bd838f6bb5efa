"""Programmatic enqueues for the operator interfaces (the CLI and the admin API): through
the SQL API's functions (`jobd.sql.enqueue`), like `jobd.Client` and applications, so every
way of asking for work builds the same jobs and gets the same answers.

    await run_trigger(runtime, "orders", "process", {"id": 42}, actor={"id": 7})  # id | None
    await run_triggers(runtime, "orders", "process", [{"id": 1}, {"id": 2}])      # ids
    await schedule_trigger(runtime, "orders", "process")  # AshOban `schedule`: scan now
    await run_schedule(runtime, "orders", "nightly_summary", input={"period": "week"})

The first argument is any `Target`: a `TriggerRuntime`, the CLI's database handle, or a
`SimpleTarget`. What this adds to the SQL path: an actor persister written in Python
(`python:`) cannot run in SQL, so its `store` runs here and the SQL function keeps what it
returned. `conn`: run inside the caller's transaction (a rollback enqueues nothing);
default: the pool.
Programmatic trigger runs do not apply `where` when enqueueing: the worker re-checks it
and cancels a job whose row does not match (`trigger_no_longer_applies`), as AshOban's
`run_oban_trigger` does. The row must exist (else `RowNotFound`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jobd.model import ActorPersister, Spec
from jobd.sql import enqueue
from jobd.sql.driver import Executor, Pool
from jobd.triggers.actors import store_actor_async


class Target(Protocol):
    """Where enqueues go: the configuration (for actor persisters), a pool, jobd's schema."""

    @property
    def spec(self) -> Spec: ...
    @property
    def pool(self) -> Pool: ...
    @property
    def schema(self) -> str: ...


@dataclass(frozen=True, slots=True)
class SimpleTarget:
    """A `Target` from its three parts."""

    spec: Spec
    pool: Pool
    schema: str


async def _stored(persister: ActorPersister | None, actor: Mapping[str, Any] | None) -> Any:
    """The actor as the SQL function should receive it: a Python persister's `store` runs
    here; field persisters are applied by the function itself."""
    if actor is None or persister is None or persister.python is None:
        return actor
    return await store_actor_async(persister, actor)


def _trigger_persister(spec: Spec, resource: str, trigger: str) -> ActorPersister | None:
    res = spec.resources.get(resource)
    found = None if res is None else res.triggers.get(trigger)
    return None if found is None else found.actor_persister


async def run_triggers(
    target: Target,
    resource: str,
    trigger: str,
    primary_keys: Sequence[Mapping[str, Any]],
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Executor | None = None,
) -> list[int]:
    """Enqueue the trigger's worker for each row, in one statement; the ids inserted (rows
    that already have a job, or do not exist, get none)."""
    stored = await _stored(_trigger_persister(target.spec, resource, trigger), actor)
    return await enqueue.run_triggers(
        conn or target.pool,
        target.schema,
        resource,
        trigger,
        primary_keys,
        actor=stored,
        tenant=tenant,
    )


async def run_trigger(
    target: Target,
    resource: str,
    trigger: str,
    primary_key: Mapping[str, Any],
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Executor | None = None,
) -> int | None:
    """Enqueue one row's job; its id, or None when the row already has one."""
    stored = await _stored(_trigger_persister(target.spec, resource, trigger), actor)
    return await enqueue.run_trigger(
        conn or target.pool,
        target.schema,
        resource,
        trigger,
        primary_key,
        actor=stored,
        tenant=tenant,
    )


async def schedule_trigger(
    target: Target,
    resource: str,
    trigger: str,
    *,
    actor: Mapping[str, Any] | None = None,
    conn: Executor | None = None,
) -> int | None:
    """Enqueue the trigger's scheduler now (AshOban `schedule`); None when a scheduler job
    is already waiting (the cron tick's and this one share their unique key)."""
    stored = await _stored(_trigger_persister(target.spec, resource, trigger), actor)
    return await enqueue.run_trigger(
        conn or target.pool, target.schema, resource, trigger, None, actor=stored
    )


async def run_schedule(
    target: Target,
    resource: str,
    name: str,
    *,
    input: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    conn: Executor | None = None,
) -> int:
    """Run a scheduled action now (with `input` merged over `action_input`); on a
    multitenant resource once per tenant, or only for `tenant`. Manual runs ignore
    `overlap`. Returns the job id (the fan-out job's when it runs per tenant)."""
    res = target.spec.resources.get(resource)
    schedule = None if res is None else res.scheduled_actions.get(name)
    stored = await _stored(None if schedule is None else schedule.actor_persister, actor)
    return await enqueue.run_schedule(
        conn or target.pool,
        target.schema,
        resource,
        name,
        input=input,
        actor=stored,
        tenant=tenant,
    )
