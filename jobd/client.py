"""`jobd.Client`: enqueue trigger and schedule jobs from an application, no YAML needed.

    async with jobd.Client("postgresql://app@db/app") as jobs:
        job_id = await jobs.run_trigger("orders", "process", {"id": 42}, actor={"id": 7})

    async with pool.acquire() as conn, conn.transaction():   # the application's own
        await conn.execute("UPDATE orders SET state = 'paid' WHERE id = $1", 42)
        await jobs.run_trigger("orders", "process", {"id": 42}, conn=conn)  # commits with it

The client calls the SQL functions of migration 002 (`run_trigger`, `run_triggers`,
`run_schedule`), which read the registry a running daemon keeps in sync with its
configuration; so the jobs are exactly the daemon's own. `conn=` is any asyncpg
connection (plain or from a pool); without it the client's small pool is used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import asyncpg

from jobd.errors import JobdError, UsageError
from jobd.sql import queries


class UnknownTrigger(UsageError):
    """No such resource, trigger or scheduled action in the daemon's registry."""


class RowNotFound(UsageError):
    """run_trigger named a row that does not exist (in that tenant)."""


def _error(exc: asyncpg.PostgresError) -> JobdError:
    """The JobdError for an error raised by jobd's SQL functions (message and hint)."""
    text = str(getattr(exc, "message", None) or exc)
    hint = getattr(exc, "hint", None)
    if hint:
        text = f"{text} (hint: {hint})"
    kinds: dict[str, type[JobdError]] = {
        "42704": UnknownTrigger,
        "P0002": RowNotFound,
        "22023": UsageError,
        "42P01": UsageError,
    }
    kind = kinds.get(getattr(exc, "sqlstate", "") or "", JobdError)
    error = kind(text)
    error.hint = hint  # type: ignore[attr-defined]
    return error


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), default=str)


class Client:
    """Enqueue jobd jobs through the database (async)."""

    def __init__(self, dsn: str, *, schema: str = "jobd", max_size: int = 4) -> None:
        self.dsn = dsn
        self.schema = schema
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        q = queries(schema)
        self._sql = {
            "trigger": q["client_run_trigger"],
            "triggers": q["client_run_triggers"],
            "schedule": q["client_run_schedule"],
        }

    @classmethod
    async def connect(cls, dsn: str, *, schema: str = "jobd") -> Client:
        client = cls(dsn, schema=schema)
        await client.open()
        return client

    async def open(self) -> None:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self._max_size,
                    server_settings={"application_name": "jobd-client"},
                )  # fmt: skip
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

    async def _call(self, query: str, conn: Any, *args: Any) -> Any:
        try:
            if conn is not None:
                return await conn.fetchval(self._sql[query], *args)
            if self._pool is None:
                raise JobdError("the client is closed: use `async with Client(...)` or connect()")
            return await self._pool.fetchval(self._sql[query], *args)
        except asyncpg.PostgresError as exc:
            raise _error(exc) from None

    async def run_trigger(
        self,
        resource: str,
        trigger: str,
        primary_key: Mapping[str, Any],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        conn: Any = None,
    ) -> int | None:
        """Enqueue the trigger's job for one row: its id, None when the row has one."""
        if primary_key is None:
            raise UsageError("primary_key is required (schedule_trigger runs the scheduler)")
        args = (resource, trigger, _dumps(dict(primary_key)), _dumps(actor), tenant)
        job_id: int | None = await self._call("trigger", conn, *args)
        return job_id

    async def run_triggers(
        self,
        resource: str,
        trigger: str,
        primary_keys: Sequence[Mapping[str, Any]],
        *,
        actor: Mapping[str, Any] | None = None,
        tenant: str | None = None,
        conn: Any = None,
    ) -> list[int]:
        """Enqueue many rows in one statement: the ids inserted (rows that already have a
        job, or do not exist, get none)."""
        keys = _dumps([dict(k) for k in primary_keys])
        ids = await self._call("triggers", conn, resource, trigger, keys, _dumps(actor), tenant)
        return list(ids or [])

    async def schedule_trigger(
        self,
        resource: str,
        trigger: str,
        *,
        actor: Mapping[str, Any] | None = None,
        conn: Any = None,
    ) -> int | None:
        """Run the trigger's scheduler now; None when a scheduler job is already waiting."""
        job_id: int | None = await self._call(
            "trigger", conn, resource, trigger, None, _dumps(actor), None
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
        conn: Any = None,
    ) -> int:
        """Run a scheduled action now, `input` merged over its action_input."""
        args = (resource, name, _dumps(input), _dumps(actor), tenant)
        job_id: int = await self._call("schedule", conn, *args)
        return job_id


__all__ = ["Client", "RowNotFound", "UnknownTrigger"]
