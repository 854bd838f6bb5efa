"""A trigger's worker: one attempt for one row (SPEC 1.2, "Worker").

Transaction shape of an attempt (one pool connection, one transaction):

    re-read the row by primary key through `worker_read`, `where` applied,
        FOR UPDATE when `lock_for_update`      -> none: Cancel("trigger_no_longer_applies")
    look up the actor -> run the action -> run `on_success` (ctx.response = the result)
    ctx.complete_in(conn)                      -> claim lost: roll back everything
    COMMIT

So the action's own writes through `ctx.conn`, `on_success` and the job's completion
commit together or not at all. Any exception rolls the transaction back and is a failed
attempt (retried with the trigger's backoff; a `RetryAfter` failure waits what the server
asked instead). The last failed attempt (`attempt >= max_attempts`, or a
`PermanentFailure`, or the action raising `Discard`) runs `on_error` in a fresh
transaction with `ctx.error = {message, kind, status, attempt}`: without
`on_error_fails_job` that transaction also completes the job, keeping the final error;
with it, the same transaction discards the job: on_error's writes and the job's end
commit together either way.
Without `on_error` the job is discarded, and `discard_cooldown` keeps the scheduler off
the row.

Log lines (logger `jobd.triggers`): `trigger.attempt_failed` (warning, `log_errors`),
`trigger.failed` (error, `log_final_error`), `trigger.on_error_failed` (error, always);
with `debug` (or `log.debug_all_triggers`): `trigger.start`, `trigger.cancel`,
`trigger.complete` at info level (the trigger opted in, so they show under the default
level), the actor included only there.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from jobd.actions.base import ActionContext
from jobd.actions.failures import describe_error
from jobd.engine.context import JobContext
from jobd.engine.jobs import ClaimLost, Job
from jobd.engine.producer import error_entry, transient_retry_s
from jobd.engine.registry import FinalFailure, Worker
from jobd.model import Resource, Trigger
from jobd.outcomes import Cancel, Discard, Snooze
from jobd.sql.driver import Connection, Record
from jobd.triggers.actors import lookup_actor, store_actor
from jobd.triggers.deps import Deps, attempt_logger
from jobd.triggers.sqlgen import reread_sql, row_sql
from jobd.triggers.tables import ResolvedTable

NO_LONGER_APPLIES = "trigger_no_longer_applies"
# A failure may name its own wait (HTTP Retry-After); the backoff below reads it. The
# engine computes the backoff in the same task right after the worker raised.
_retry_after_s: ContextVar[float | None] = ContextVar("jobd_retry_after_s", default=None)


def trigger_backoff(trigger: Trigger) -> Callable[[int], float]:
    """The engine backoff of a trigger's worker: the server's Retry-After when the failure
    carried one, else the trigger's `backoff`."""

    def backoff(attempt: int) -> float:
        asked = _retry_after_s.get()
        if asked is not None:
            _retry_after_s.set(None)
            return asked
        return trigger.backoff.delay_s(attempt)

    return backoff


def trigger_worker(deps: Deps, resource: Resource, trigger: Trigger) -> Worker:
    """The engine worker for `trigger`'s jobs."""

    async def run(job: Job, ctx: JobContext) -> None:
        await run_attempt(deps, resource, trigger, job, ctx)

    return run


def trigger_final_failure(deps: Deps, resource: Resource, trigger: Trigger) -> FinalFailure:
    """What ends a trigger job whose failure the engine found final before it ran (rescued
    too often): the last failed attempt's path, so `on_error` runs."""

    async def fail(job: Job, ctx: JobContext, exc: BaseException) -> None:
        logger = attempt_logger(job, resource.name, trigger=trigger.name)
        await _failed(deps, resource, trigger, job, ctx, exc, logger)

    return fail


async def run_attempt(
    deps: Deps, resource: Resource, trigger: Trigger, job: Job, ctx: JobContext
) -> None:
    logger = attempt_logger(job, resource.name, trigger=trigger.name)
    timeout = asyncio.timeout(trigger.timeout_s) if trigger.timeout_s else None
    try:
        if timeout is None:
            await _attempt(deps, resource, trigger, job, ctx, logger)
        else:
            async with timeout:
                await _attempt(deps, resource, trigger, job, ctx, logger)
    except Cancel as cancel:
        if trigger.debug:
            logger.info("trigger.cancel", reason=cancel.reason)
        raise
    except (Snooze, ClaimLost):
        raise
    except Exception as exc:
        if transient_retry_s(job, exc) is not None:
            raise  # the database failed, not the action: the engine re-runs the job
        failure: BaseException = exc
        if timeout is not None and timeout.expired():
            failure = TimeoutError(f"attempt timed out after {trigger.timeout_s}s")
        await _failed(deps, resource, trigger, job, ctx, failure, logger)


async def _attempt(
    deps: Deps, resource: Resource, trigger: Trigger, job: Job, ctx: JobContext, logger: Any
) -> None:
    tenant = job.args.get("tenant")
    async with deps.pool.acquire() as conn, conn.transaction():
        table, table_sql = await deps.tables.table_for(conn, resource, tenant)
        sql = reread_sql(resource, trigger, table, table_sql, deps.schema)
        row = await conn.fetchrow(sql, job.args.get("pk") or {})
        if row is None:
            raise Cancel(NO_LONGER_APPLIES)
        actor = await _actor(trigger, job, conn)
        if trigger.debug:
            logger.info("trigger.start", primary_key=job.args.get("pk"), actor=actor)
        actx = _action_context(job, resource, trigger, conn, logger, row, table, table_sql, actor)
        result = await deps.actions.get(resource, trigger.action).run(actx)
        if trigger.on_success is not None:
            follow = dataclasses.replace(actx, response=result)
            await deps.actions.get(resource, trigger.on_success).run(follow)
        await ctx.complete_in(conn)
    if trigger.debug:
        logger.info("trigger.complete")


def _action_context(
    job: Job,
    resource: Resource,
    trigger: Trigger,
    conn: Connection,
    logger: Any,
    row: Record | None,
    table: ResolvedTable,
    table_sql: str,
    actor: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
) -> ActionContext:
    """The context of an action run for the job's row (`row` None: the row is gone, which
    only on_error meets; its primary key then comes from the job)."""
    key = {c: row[c] for c in table.primary_key} if row is not None else job.args.get("pk")
    return ActionContext(
        job=job,
        resource=resource.name,
        conn=conn,
        log=logger,
        trigger=trigger.name,
        record=None if row is None else dict(row.items()),
        primary_key=dict(key or {}),
        actor=actor,
        tenant=job.args.get("tenant"),
        input=job.args.get("input") or {},
        table_sql=table_sql,
        error=error,
    )


async def _actor(trigger: Trigger, job: Job, conn: Connection) -> dict[str, Any] | None:
    stored = job.args.get("actor")
    if stored is None and trigger.default_actor is not None:
        stored = store_actor(trigger.actor_persister, trigger.default_actor)
    return await lookup_actor(trigger.actor_persister, stored, conn)


def _is_final(job: Job, exc: BaseException) -> bool:
    return (
        job.attempt >= job.max_attempts
        or isinstance(exc, Discard)
        or bool(getattr(exc, "permanent", False))
    )


async def _failed(
    deps: Deps,
    resource: Resource,
    trigger: Trigger,
    job: Job,
    ctx: JobContext,
    exc: BaseException,
    logger: Any,
) -> None:
    """After a failed attempt: log, then retry (re-raise) or end the job."""
    error = describe_error(exc, job.attempt)
    if isinstance(exc, Discard):
        error = {**error, "message": exc.reason, "kind": "discard"}
    if not _is_final(job, exc):
        if trigger.log_errors:
            logger.warning("trigger.attempt_failed", error=error["message"], kind=error["kind"])
        _retry_after_s.set(getattr(exc, "retry_after_s", None))
        raise exc
    if trigger.log_final_error:
        logger.error("trigger.failed", error=error["message"], kind=error["kind"])
    if trigger.on_error is None:
        _end_failed(job, exc, error)
    try:
        await _run_on_error(deps, resource, trigger, job, ctx, error, logger)
    except ClaimLost:
        raise
    except Exception as on_error_exc:
        message = f"{type(on_error_exc).__name__}: {on_error_exc}"
        logger.error("trigger.on_error_failed", error=message)
        raise Discard(f"{error['message']}; on_error failed: {on_error_exc}") from on_error_exc


def _end_failed(job: Job, exc: BaseException, error: dict[str, Any]) -> None:
    """Discard the job: re-raising on the last attempt keeps the traceback in its errors."""
    if isinstance(exc, Discard) or job.attempt >= job.max_attempts:
        raise exc
    raise Discard(error["message"]) from exc


async def _run_on_error(
    deps: Deps,
    resource: Resource,
    trigger: Trigger,
    job: Job,
    ctx: JobContext,
    error: dict[str, Any],
    logger: Any,
) -> None:
    """Run on_error and end the job in the same transaction."""
    on_error = trigger.on_error
    assert on_error is not None  # checked by the caller
    tenant = job.args.get("tenant")
    complete = not trigger.on_error_fails_job and error["kind"] != "discard"
    async with deps.pool.acquire() as conn, conn.transaction():
        table, table_sql = await deps.tables.table_for(conn, resource, tenant)
        sql = row_sql(table, table_sql, deps.schema, lock=trigger.lock_for_update)
        row = await conn.fetchrow(sql, job.args.get("pk") or {})
        actor = await _actor(trigger, job, conn)
        actx = _action_context(
            job, resource, trigger, conn, logger, row, table, table_sql, actor, error
        )
        await deps.actions.get(resource, on_error).run(actx)
        # on_error's writes and the job's end (completed with the error kept, or discarded)
        # commit together: a crash in between cannot run on_error twice or lose its writes.
        entry = error_entry(job, error["message"], error["kind"])
        await (ctx.complete_in(conn, entry) if complete else ctx.discard_in(conn, entry))
