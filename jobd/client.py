"""`jobd.Client`: enqueue trigger and schedule jobs from an application, no YAML needed.

    async with jobd.Client("postgresql://app@db/app") as jobs:
        job_id = await jobs.run_trigger("orders", "process", {"id": 42}, actor={"id": 7})

    async with pool.acquire() as conn, conn.transaction():   # the application's own
        await conn.execute("UPDATE orders SET state = 'paid' WHERE id = $1", 42)
        await jobs.run_trigger("orders", "process", {"id": 42}, conn=conn)  # commits with it

    jobs = jobd.Client(pool=app_pool)   # or share the application's pool (not closed by us)

    # options of a row's job and of a scheduled action's run: input merged over the
    # configured action_input, a time (scheduled until then), a priority
    await jobs.run_trigger("orders", "remind", {"id": 42}, input={"tone": "firm"},
                           schedule_in="2h", priority=1)
    await jobs.schedule("orders", "report", input={"to": "ops"}, scheduled_at=when)  # one-off

The client calls jobd's SQL functions (`run_trigger`, `run_triggers`, `run_schedule`),
the one implementation of programmatic enqueue (the CLI and the admin API call them too,
through this class): they read the registry that `jobd run` and `jobd migrate -c` keep in
step with the configuration, so the jobs are exactly the daemon's own. `conn=` is any
asyncpg connection (plain or from a pool; JSON travels as text, so it needs no codec):
the enqueue commits or rolls back with its transaction. Without it the client's pool is
used. The functions' errors come back as JobdErrors: `UnknownTrigger` (unknown or deleted,
with the known names and "did you mean"), `RowNotFound`, and `UsageError` for a bad key,
actor, input, tenant, time or priority (checked here first: jobd.common.enqueue_options;
a past `scheduled_at` by the database's clock), and for any value the database cannot
take (SQLSTATE class 22: a key of the wrong type, a number out of range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import asyncpg

from jobd.common.enqueue_options import enqueue_options
from jobd.common.jsontext import json_text_or_none
from jobd.errors import JobdError, RowNotFound, UnknownTrigger, UsageError, closest
from jobd.sql import queries
from jobd.sql.driver import Executor, Pool

_ERRORS: Mapping[str, type[JobdError]] = {
    "42704": UnknownTrigger,  # undefined_object
    "P0002": RowNotFound,  # no_data_found
    "22023": UsageError,  # invalid_parameter_value
    "42P01": UsageError,  # undefined_table (the resource's table is missing)
}


def _did_you_mean(text: str, hint: str | None, asked: Sequence[str]) -> str:
    """An unknown-name message with "did you mean" when a known name (the function's hint
    lists them: `triggers of orders: process, ship`) is close to the name asked for
    (`asked`: resource, name; "unknown resource" messages are about the first)."""
    if not hint or ": " not in hint or len(asked) < 2:
        return text
    known = hint.split(": ", 1)[1].split(", ")
    match = closest(asked[0] if "unknown resource" in text else asked[1], known)
    return f"{text}; did you mean {match!r}?" if match else text


def api_error(exc: asyncpg.PostgresError, asked: Sequence[str] = ()) -> JobdError:
    """The JobdError for an error raised by jobd's SQL functions (message and hint);
    `asked`: the resource and name of the call, for "did you mean"."""
    text = str(getattr(exc, "message", None) or exc)
    hint = getattr(exc, "hint", None)
    state = getattr(exc, "sqlstate", "") or ""
    # Class 22 (data exception): a value of the wrong type or range, e.g. a primary key
    # "abc" for an integer column: the caller's input, not jobd's failure.
    kind = _ERRORS.get(state, UsageError if state.startswith("22") else JobdError)
    if kind is UnknownTrigger:
        text = _did_you_mean(text, hint, asked)
    error = kind(f"{text} (hint: {hint})" if hint else text)
    error.hint = hint  # type: ignore[attr-defined]
    return error


class Client:
    """Enqueue jobd jobs through the database (async)."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "jobd",
        max_size: int = 4,
        pool: Pool | None = None,
    ) -> None:
        if (dsn is None) == (pool is None):
            raise UsageError("jobd.Client needs a dsn or a pool (one of them)")
        self.dsn = dsn
        self.schema = schema
        self._max_size = max_size
        self._pool = pool
        self._owns_pool = pool is None

    @classmethod
    async def connect(cls, dsn: str, *, schema: str = "jobd") -> Client:
        client = cls(dsn, schema=schema)
        await client.open()
        return client

    async def open(self) -> None:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self._max_size,
                    server_settings={"application_name": "jobd-client"},
                )
            except (OSError, asyncpg.PostgresError) as exc:
                raise JobdError(f"cannot connect to the database: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None and self._owns_pool:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def store_actor(
        self, resource: str, name: str, actor: Mapping[str, Any] | None, *, schedule: bool
    ) -> Mapping[str, Any] | None:
        """What the SQL function receives as the actor of a run of `resource`'s trigger (or
        schedule) `name`: the actor as given (the function applies field persisters)."""
        return actor

    async def _call(self, query: str, conn: Executor | None, *args: Any) -> Any:
        if conn is None:
            if self._pool is None:
                raise JobdError("the client is closed: use `async with Client(...)` or connect()")
            conn = self._pool
        try:
            return await conn.fetchval(queries(self.schema)[query], *args)
        except asyncpg.PostgresError as exc:
            raise api_error(exc, [str(a) for a in args[:2]]) from None

    async def run_trigger(
        self,
        resource: str,
        trigger: str,
        primary_key: Mapping[str, Any],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        input: Mapping[str, Any] | None = None,
        schedule_in: str | float | timedelta | None = None,
        scheduled_at: datetime | str | None = None,
        priority: int | None = None,
        conn: Executor | None = None,
    ) -> int | None:
        """Enqueue the trigger's job for one row: its id, None when the row has one (a
        scheduled one too: the key is held from the insert). `input` is merged over the
        trigger's action_input; with `schedule_in` (a duration: "10m", seconds, a
        timedelta) or `scheduled_at` (a timestamp with a timezone) the job is `scheduled`
        until then; `priority` 0-9 replaces the trigger's."""
        options = enqueue_options(input, schedule_in, scheduled_at, priority)
        if primary_key is None:
            raise UsageError("primary_key is required (schedule_trigger runs the scheduler)")
        if not isinstance(primary_key, Mapping):
            raise UsageError(f"primary_key must be a mapping, got {type(primary_key).__name__}")
        key = json_text_or_none(dict(primary_key))
        stored = json_text_or_none(await self.store_actor(resource, trigger, actor, schedule=False))
        job_id: int | None = await self._call(
            "client_run_trigger", conn, resource, trigger, key, stored, tenant, *options.params()
        )
        return job_id

    async def run_triggers(
        self,
        resource: str,
        trigger: str,
        primary_keys: Sequence[Mapping[str, Any]],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        input: Mapping[str, Any] | None = None,
        schedule_in: str | float | timedelta | None = None,
        scheduled_at: datetime | str | None = None,
        priority: int | None = None,
        conn: Executor | None = None,
    ) -> list[int]:
        """Enqueue many rows in one statement, each job with the options of run_trigger:
        the ids inserted (rows that already have a job, or do not exist, get none)."""
        options = enqueue_options(input, schedule_in, scheduled_at, priority)
        keys = json_text_or_none([dict(k) for k in primary_keys])
        stored = json_text_or_none(await self.store_actor(resource, trigger, actor, schedule=False))
        ids = await self._call(
            "client_run_triggers", conn, resource, trigger, keys, stored, tenant, *options.params()
        )
        return list(ids or [])

    async def schedule_trigger(
        self,
        resource: str,
        trigger: str,
        *,
        actor: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> int | None:
        """Run the trigger's scheduler now (AshOban `schedule`); None when a scheduler job
        is already waiting (a cron tick's and this one share their unique key). It takes
        no input, time or priority: those are options of each row's job (run_trigger)."""
        stored = json_text_or_none(await self.store_actor(resource, trigger, actor, schedule=False))
        job_id: int | None = await self._call(
            "client_run_trigger", conn, resource, trigger, None, stored, None, *(None,) * 4
        )
        return job_id

    async def schedule(
        self,
        resource: str,
        name: str,
        *,
        input: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        schedule_in: str | float | timedelta | None = None,
        scheduled_at: datetime | str | None = None,
        priority: int | None = None,
        conn: Executor | None = None,
    ) -> int:
        """Run a scheduled action now, `input` merged over its action_input; on a
        multitenant resource once per tenant (a fan-out job), or only for `tenant`. With
        `schedule_in` or `scheduled_at` it is a one-off event: one run at that time
        (`scheduled` until then; cancel it as any job). Manual runs ignore `overlap`.
        Returns the job id."""
        options = enqueue_options(input, schedule_in, scheduled_at, priority)
        stored = json_text_or_none(await self.store_actor(resource, name, actor, schedule=True))
        given, in_s, at, prio = options.params()
        job_id: int = await self._call(
            "client_run_schedule", conn, resource, name, given, stored, tenant, in_s, at, prio
        )
        return job_id


__all__ = ["Client", "RowNotFound", "UnknownTrigger"]
