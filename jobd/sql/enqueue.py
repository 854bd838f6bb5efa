"""Enqueue through jobd's SQL API (functions.sql): the one implementation of programmatic
enqueues, called by `jobd.Client`, the admin API and the CLI alike.

JSON travels as text, so any connection works (the caller's own, without jobd's codecs);
`conn` may be a connection (inside the caller's transaction: a rollback enqueues nothing)
or a pool. The functions' errors come back as JobdErrors: `UnknownTrigger` (an unknown or
deleted resource, trigger or schedule, with the known names), `RowNotFound`, and
`UsageError` for a bad key, actor, input or tenant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from jobd.common.jsontext import json_text_or_none
from jobd.errors import JobdError, RowNotFound, UnknownTrigger, UsageError
from jobd.sql import queries
from jobd.sql.driver import Executor

_ERRORS: Mapping[str, type[JobdError]] = {
    "42704": UnknownTrigger,  # undefined_object
    "P0002": RowNotFound,  # no_data_found
    "22023": UsageError,  # invalid_parameter_value
    "42P01": UsageError,  # undefined_table (the resource's table is missing)
}


def api_error(exc: asyncpg.PostgresError) -> JobdError:
    """The JobdError for an error raised by jobd's SQL functions (message and hint)."""
    text = str(getattr(exc, "message", None) or exc)
    hint = getattr(exc, "hint", None)
    error = _ERRORS.get(getattr(exc, "sqlstate", "") or "", JobdError)(
        f"{text} (hint: {hint})" if hint else text
    )
    error.hint = hint  # type: ignore[attr-defined]
    return error


async def _call(conn: Executor, schema: str, query: str, *args: Any) -> Any:
    try:
        return await conn.fetchval(queries(schema)[query], *args)
    except asyncpg.PostgresError as exc:
        raise api_error(exc) from None


async def run_trigger(
    conn: Executor,
    schema: str,
    resource: str,
    trigger: str,
    primary_key: Mapping[str, Any] | None,
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> int | None:
    """One row's trigger job (its id; None when the row has one waiting already); with
    `primary_key` None the trigger's scheduler now (None when a run is waiting)."""
    key = None if primary_key is None else dict(primary_key)
    args = (resource, trigger, json_text_or_none(key), json_text_or_none(actor), tenant)
    job_id: int | None = await _call(conn, schema, "client_run_trigger", *args)
    return job_id


async def run_triggers(
    conn: Executor,
    schema: str,
    resource: str,
    trigger: str,
    primary_keys: Sequence[Mapping[str, Any]],
    *,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> list[int]:
    """Many rows' trigger jobs in one statement: the ids inserted (rows that already have
    a job, or do not exist, get none)."""
    keys = json_text_or_none([dict(k) for k in primary_keys])
    ids = await _call(
        conn,
        schema,
        "client_run_triggers",
        resource,
        trigger,
        keys,
        json_text_or_none(actor),
        tenant,
    )
    return list(ids or [])


async def run_schedule(
    conn: Executor,
    schema: str,
    resource: str,
    name: str,
    *,
    input: Mapping[str, Any] | None = None,
    actor: Mapping[str, Any] | None = None,
    tenant: str | None = None,
) -> int:
    """A scheduled action's run now, `input` merged over its action_input: the job id."""
    args = (resource, name, json_text_or_none(input), json_text_or_none(actor), tenant)
    job_id: int = await _call(conn, schema, "client_run_schedule", *args)
    return job_id
