"""`jobd.Client`: enqueue trigger and schedule jobs from an application, no YAML needed.

    async with jobd.Client("postgresql://app@db/app") as jobs:
        job_id = await jobs.run_trigger("orders", "process", {"id": 42}, actor={"id": 7})

    async with pool.acquire() as conn, conn.transaction():   # the application's own
        await conn.execute("UPDATE orders SET state = 'paid' WHERE id = $1", 42)
        await jobs.run_trigger("orders", "process", {"id": 42}, conn=conn)  # commits with it

The client calls jobd's SQL functions (`run_trigger`, `run_triggers`, `run_schedule`,
through `jobd.sql.enqueue`), which read the registry that `jobd run` and `jobd migrate -c`
keep in step with the configuration; so the jobs are exactly the daemon's own. `conn=` is
any asyncpg connection (plain or from a pool); without it the client's small pool is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import asyncpg

from jobd.errors import JobdError, RowNotFound, UnknownTrigger, UsageError
from jobd.sql import enqueue
from jobd.sql.driver import Executor, Pool


class Client:
    """Enqueue jobd jobs through the database (async)."""

    def __init__(self, dsn: str, *, schema: str = "jobd", max_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self._max_size = max_size
        self._pool: Pool | None = None

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
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _target(self, conn: Executor | None) -> Executor:
        if conn is not None:
            return conn
        if self._pool is None:
            raise JobdError("the client is closed: use `async with Client(...)` or connect()")
        return self._pool

    async def run_trigger(
        self,
        resource: str,
        trigger: str,
        primary_key: Mapping[str, Any],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        conn: Executor | None = None,
    ) -> int | None:
        """Enqueue the trigger's job for one row: its id, None when the row has one."""
        if primary_key is None:
            raise UsageError("primary_key is required (schedule_trigger runs the scheduler)")
        return await enqueue.run_trigger(
            self._target(conn),
            self.schema,
            resource,
            trigger,
            primary_key,
            actor=actor,
            tenant=tenant,
        )

    async def run_triggers(
        self,
        resource: str,
        trigger: str,
        primary_keys: Sequence[Mapping[str, Any]],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        conn: Executor | None = None,
    ) -> list[int]:
        """Enqueue many rows in one statement: the ids inserted (rows that already have a
        job, or do not exist, get none)."""
        return await enqueue.run_triggers(
            self._target(conn),
            self.schema,
            resource,
            trigger,
            primary_keys,
            actor=actor,
            tenant=tenant,
        )

    async def schedule_trigger(
        self,
        resource: str,
        trigger: str,
        *,
        actor: Mapping[str, Any] | None = None,
        conn: Executor | None = None,
    ) -> int | None:
        """Run the trigger's scheduler now; None when a scheduler job is already waiting."""
        return await enqueue.run_trigger(
            self._target(conn), self.schema, resource, trigger, None, actor=actor
        )

    async def schedule(
        self,
        resource: str,
        name: str,
        *,
        input: Mapping[str, Any] | None = None,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        conn: Executor | None = None,
    ) -> int:
        """Run a scheduled action now, `input` merged over its action_input."""
        return await enqueue.run_schedule(
            self._target(conn),
            self.schema,
            resource,
            name,
            input=input,
            actor=actor,
            tenant=tenant,
        )


__all__ = ["Client", "RowNotFound", "UnknownTrigger"]
