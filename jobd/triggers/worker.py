"""A trigger's worker: the attempts of a batch of claimed jobs (SPEC 1.2, "Worker").

The producer hands the worker the jobs of one fetch together; they are split by tenant,
and each part is one batch. Transaction shape of a batch (one pool connection, one
transaction), the default (`action_in_transaction: true`):

    fence the jobs and re-read their rows in ONE statement (`batch_read`): the jobs
        locked, the rows by primary key with `where` applied, FOR UPDATE when
        `lock_for_update`                 -> no row: Cancel("trigger_no_longer_applies")
    run every job concurrently: look up its actor -> run the action -> run a python or
        http `on_success` (ctx.response = the result); a job that uses `ctx.conn` does
        so inside a savepoint of its own (jobd.triggers.batchconn), rolled back if it
        fails, so only its own writes vanish
    apply an `update` on_success to the rows of every successful job in ONE statement
    complete the successful jobs in ONE statement (fenced: the jobs are locked)
    COMMIT

So each job's writes through `ctx.conn`, its `on_success` and its completion commit
together or not at all, as with one transaction per job, while a batch of n jobs costs
five statements and one commit instead of about five statements and one commit per job.
A failed attempt (an exception, a trigger `timeout`) is retried with the trigger's backoff
(a `RetryAfter` failure waits what the server asked instead). The last failed attempt
(`attempt >= max_attempts`, or a `PermanentFailure`, or the action raising `Discard`)
runs `on_error` after the batch, in a fresh transaction of its own, with `ctx.error =
{message, kind, status, attempt}`: without `on_error_fails_job` that transaction also
completes the job, keeping the final error; with it, the same transaction discards the
job: on_error's writes and the job's end commit together either way. Without `on_error`
the job is discarded, and `discard_cooldown` keeps the scheduler off the row. A stop
past the grace cancels the unfinished jobs of a batch (they go back to available) and
commits the finished ones.

With `action_in_transaction: false` nothing is held while the actions run: the rows are
read (and actors looked up) on a connection given back before the actions start;
`ctx.conn` is unavailable to them (`NoConnection`); then ONE short transaction locks the
jobs and the rows that still match, runs `on_success`, completes their jobs and commits.
A row that stopped matching while its action ran ends its job cancelled
(`row_changed_during_action`), its action done but its on_success not run.

Log lines (logger `jobd.triggers`): `trigger.attempt_failed` (warning, `log_errors`),
`trigger.failed` (error, `log_final_error`), `trigger.on_error_failed` (error, always);
with `debug` (or `log.debug_all_triggers`): `trigger.start`, `trigger.cancel`,
`trigger.complete` at info level (the trigger opted in, so they show under the default
level), the actor included only there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any

import asyncpg
import structlog

from jobd.actions.base import ActionContext
from jobd.actions.failures import describe_error
from jobd.actions.update import UpdateAction
from jobd.engine.context import JobContext, Refill
from jobd.engine.jobs import ClaimLost, Job, OutcomeKind
from jobd.engine.producer import error_entry, transient_retry_s
from jobd.engine.registry import BatchWorker, FinalFailure, Worker
from jobd.model import Resource, Trigger
from jobd.outcomes import Cancel, Discard, Snooze
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.triggers.actors import lookup_actor, store_actor
from jobd.triggers.batchconn import JobConnection, NoConnection, SharedConnection
from jobd.triggers.batchsql import FENCED, JOB_ID, batch_read_sql
from jobd.triggers.deps import Deps, attempt_logger
from jobd.triggers.sqlgen import row_sql
from jobd.triggers.tables import ResolvedTable

NO_LONGER_APPLIES = "trigger_no_longer_applies"
CHANGED = "row_changed_during_action"
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


def trigger_batch(deps: Deps, resource: Resource, trigger: Trigger) -> BatchWorker:
    """The engine's batch worker for `trigger`'s jobs: one batch per tenant."""

    async def run(jobs: Sequence[Job], ctxs: Sequence[JobContext]) -> list[Exception | None]:
        results: list[Exception | None] = [None] * len(jobs)
        # Delete events' jobs make batches of their own: their rows are gone (they carry
        # the old row, jobd.triggers.events), so they are not re-read.
        by_tenant: dict[tuple[str | None, bool], list[int]] = {}
        for i, job in enumerate(jobs):
            key = (job.args.get("tenant"), job.args.get("event") == "delete")
            by_tenant.setdefault(key, []).append(i)
        refill = ctxs[0].refill  # one claim per producer batch: the first part's
        for (tenant, deleted), positions in by_tenant.items():
            part = [(jobs[i], ctxs[i]) for i in positions]
            batch = _Batch(deps, resource, trigger, tenant, part, refill, deleted=deleted)
            refill = None
            for i, result in zip(positions, await batch.run(), strict=True):
                results[i] = result
        return results

    return run


def trigger_worker(deps: Deps, resource: Resource, trigger: Trigger) -> Worker:
    """The single-job form of `trigger_batch` (a batch of one)."""
    batch = trigger_batch(deps, resource, trigger)

    async def run(job: Job, ctx: JobContext) -> None:
        [result] = await batch([job], [ctx])
        if result is not None:
            raise result

    return run


def trigger_final_failure(deps: Deps, resource: Resource, trigger: Trigger) -> FinalFailure:
    """What ends a trigger job whose failure the engine found final before it ran (rescued
    too often): the last failed attempt's path, so `on_error` runs."""

    async def fail(job: Job, ctx: JobContext, exc: BaseException) -> None:
        logger = attempt_logger(job, resource.name, trigger=trigger.name)
        await _failed(deps, resource, trigger, job, ctx, exc, logger)

    return fail


class _RowsRefused(Exception):
    """The batch's on_success statement failed on a row's values (see `_finish`)."""


@dataclasses.dataclass(eq=False)
class _Attempt:
    """One job's attempt within a batch."""

    job: Job
    ctx: JobContext
    logger: Any
    row: dict[str, Any] | None = None  # as re-read; None until read, or when it no longer applies
    actor: dict[str, Any] | None = None
    action_ctx: ActionContext | None = None
    response: Any = None
    batched_update: bool = False  # its on_success is an update left to the batch statement
    failure: Exception | None = None  # the attempt failed (to settle after the batch)
    result: Exception | None = None  # what the engine gets (None: done)
    stopped: bool = False  # cut short by a stop: the engine returns the job

    wrote: bool = False  # it used ctx.conn (its writes live only in the batch's transaction)

    @property
    def running(self) -> bool:
        return self.failure is None and self.result is None and not self.stopped


class _Batch:
    """The attempts of one batch: jobs of one trigger and one tenant."""

    def __init__(
        self,
        deps: Deps,
        resource: Resource,
        trigger: Trigger,
        tenant: str | None,
        jobs: list[tuple[Job, JobContext]],
        refill: Refill | None,
        *,
        deleted: bool = False,
    ) -> None:
        self.deps, self.resource, self.trigger, self.tenant = deps, resource, trigger, tenant
        self.refill = refill
        self.deleted = deleted  # delete events' jobs: each row is the old one it carries
        self.attempts = [
            _Attempt(job, ctx, attempt_logger(job, resource.name, trigger=trigger.name))
            for job, ctx in jobs
        ]
        self.node_id = jobs[0][1].node_id
        self.table: ResolvedTable | None = None
        self.table_sql = ""
        self.stopping = False

    async def run(self) -> list[Exception | None]:
        try:
            if self.trigger.action_in_transaction:
                await self._in_transaction()
            else:
                await self._outside_transaction()
        except Exception as exc:  # the batch's transaction failed: nothing of it committed
            for a in self.attempts:
                if a.ctx.ended is not None or a.running:
                    a.ctx.ended = None
                    a.failure = exc
        failed = [a for a in self.attempts if a.failure is not None]
        await asyncio.gather(*(self._settle_failure(a) for a in failed))
        if self.stopping:
            raise asyncio.CancelledError
        for a in self.attempts:
            if a.ctx.ended is not None and self.trigger.debug:
                a.logger.info("trigger.complete")
        return [a.result for a in self.attempts]

    # -- the two shapes --------------------------------------------------------------------

    async def _in_transaction(self) -> None:
        async with self.deps.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    lock_rows = self.trigger.lock_for_update
                    await self._read(conn, lock_jobs=True, lock_rows=lock_rows)
                    shared = SharedConnection(conn)
                    running = [a for a in self.attempts if a.running]
                    await self._concurrently(
                        running,
                        lambda a: self._attempt(a, JobConnection(shared, a.job.id), True),
                    )
                    await self._finish(conn, [a for a in running if a.running])
            except _RowsRefused:
                await self._finish_again(conn, lock_rows=self.trigger.lock_for_update)
                return
        self._committed()

    async def _finish_again(
        self, conn: Connection, *, lock_rows: bool, gone: str = NO_LONGER_APPLIES
    ) -> None:
        """One row's on_success values broke the batch's statement, which rolled the
        batch back; no job had written anything of its own (see `_finish`), so the
        actions' results are all there is: fence and read again, then finish row by row."""
        done = [a for a in self.attempts if a.running]
        async with conn.transaction():
            await self._read(conn, lock_jobs=True, lock_rows=lock_rows, gone=gone)
            await self._finish(conn, [a for a in done if a.running], one_by_one=True)
        self._committed()

    def _committed(self) -> None:
        """The batch's transaction committed: the jobs it claimed for the queue stand."""
        if self.refill is not None:
            self.refill.committed()

    async def _outside_transaction(self) -> None:
        async with self.deps.pool.acquire() as conn:
            await self._read(conn, lock_jobs=False, lock_rows=False)
            running = [a for a in self.attempts if a.running]
            for a in running:  # before the actions: the lookup may need the database
                a.actor = await self._actor_of(a, conn)
        absent = NoConnection(self.resource.name, self.trigger.name)
        await self._concurrently(running, lambda a: self._attempt(a, absent, False))
        done = [a for a in running if a.running]
        if not done:
            return
        async with self.deps.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    # The rows may have changed while the actions ran: lock those that
                    # still match.
                    await self._read(conn, lock_jobs=True, lock_rows=True, gone=CHANGED)
                    done = [a for a in done if a.running]
                    shared = SharedConnection(conn)
                    await self._concurrently(
                        done, lambda a: self._follow_up(a, JobConnection(shared, a.job.id))
                    )
                    await self._finish(conn, [a for a in done if a.running])
            except _RowsRefused:
                await self._finish_again(conn, lock_rows=True, gone=CHANGED)
                return
        self._committed()

    # -- steps -----------------------------------------------------------------------------

    async def _read(
        self, conn: Connection, *, lock_jobs: bool, lock_rows: bool, gone: str = NO_LONGER_APPLIES
    ) -> None:
        """Fence the running attempts' jobs and re-read their rows (one statement)."""
        if self.table is None:
            self.table, self.table_sql = await self.deps.tables.table_for(
                conn, self.resource, self.tenant
            )
        running = [a for a in self.attempts if a.running]
        sql = batch_read_sql(
            self.resource,
            self.trigger,
            self.table,
            self.table_sql,
            self.deps.schema,
            lock_jobs=lock_jobs,
            lock_rows=lock_rows,
            deleted=self.deleted,
        )
        ids = [a.job.id for a in running]
        rows = await conn.fetch(sql, ids, [a.job.attempt for a in running], self.node_id)
        found = {row[FENCED]: row for row in rows}
        for a in running:
            row = found.get(a.job.id)
            if row is None:
                a.result = ClaimLost(f"job {a.job.id} attempt {a.job.attempt}: claim lost")
            elif row[JOB_ID] is None:
                if self.trigger.debug:
                    a.logger.info("trigger.cancel", reason=gone)
                a.result = Cancel(gone)
            else:
                a.row = {k: v for k, v in row.items() if k not in (FENCED, JOB_ID)}

    async def _concurrently(
        self, attempts: list[_Attempt], work: Callable[[_Attempt], Any]
    ) -> None:
        """Run `work` for every attempt at once. A stop (cancellation) cuts the unfinished
        ones short and lets the batch commit the finished ones before it stops."""
        tasks = [asyncio.create_task(work(a)) for a in attempts]
        if not tasks:
            return
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            self.stopping = True
            for task in tasks:
                task.cancel()
            finished = await asyncio.gather(*tasks, return_exceptions=True)
            for a, outcome in zip(attempts, finished, strict=True):
                if isinstance(outcome, asyncio.CancelledError):
                    a.stopped = True

    async def _attempt(self, a: _Attempt, conn: Any, follow_up: bool) -> None:
        """One job's action (with its actor lookup first and, with `follow_up`, its
        on_success after), bounded by the trigger's timeout; a failure is kept on `a`."""
        structlog.contextvars.bind_contextvars(
            job_id=a.job.id, queue=a.job.queue, worker=a.job.worker
        )
        trigger = self.trigger
        timeout = asyncio.timeout(trigger.timeout_s) if trigger.timeout_s else None
        keep = False
        try:
            async with timeout if timeout is not None else contextlib.nullcontext():
                if a.actor is None and follow_up:
                    a.actor = await self._actor_of(a, conn)
                if trigger.debug:
                    a.logger.info("trigger.start", primary_key=a.job.args.get("pk"), actor=a.actor)
                a.action_ctx = self._context(a, conn)
                a.response = await self.deps.actions.get(self.resource, trigger.action).run(
                    a.action_ctx
                )
                if follow_up:
                    await self._on_success(a, conn)
            keep = True
        except (Snooze, ClaimLost) as exc:
            a.result = exc
        except Exception as exc:
            expired = timeout is not None and timeout.expired()
            a.failure = (
                TimeoutError(f"attempt timed out after {trigger.timeout_s}s") if expired else exc
            )
        finally:
            if isinstance(conn, JobConnection):
                a.wrote = a.wrote or (keep and conn.entered)
                await conn.close(keep=keep)

    async def _follow_up(self, a: _Attempt, conn: JobConnection) -> None:
        """The on_success of an action that ran outside the transaction."""
        keep = False
        try:
            a.action_ctx = dataclasses.replace(self._context(a, conn), response=a.response)
            await self._on_success(a, conn)
            keep = True
        except Exception as exc:
            a.failure = exc
        finally:
            a.wrote = a.wrote or (keep and conn.entered)
            await conn.close(keep=keep)

    async def _on_success(self, a: _Attempt, conn: Any) -> None:
        name = self.trigger.on_success
        if name is None:
            return
        action = self.deps.actions.get(self.resource, name)
        if isinstance(action, UpdateAction) and not getattr(conn, "entered", False):
            a.batched_update = True  # the job wrote nothing itself: one statement for all
            return
        assert a.action_ctx is not None
        await action.run(dataclasses.replace(a.action_ctx, response=a.response))

    async def _finish(
        self, conn: Connection, done: list[_Attempt], *, one_by_one: bool = False
    ) -> None:
        """Apply the batched on_success and complete the successful jobs (their jobs are
        locked by the fence, so the completion cannot miss one). The on_success statement
        runs bare when no job of the batch wrote through ctx.conn (a failure then rolls
        back only what `_finish_again` redoes: `_RowsRefused`), else in a savepoint."""
        batched = [a for a in done if a.batched_update]
        if batched:
            guarded = one_by_one or any(a.wrote for a in self.attempts)
            await self._update_rows(conn, batched, guarded=guarded, one_by_one=one_by_one)
        done = [a for a in done if a.running]
        if not done:
            return
        ids, attempts = [a.job.id for a in done], [a.job.attempt for a in done]
        if self.refill is not None:  # the same statement claims the queue's next jobs
            completed = await self.refill.complete_and_claim(conn, ids, attempts)
        else:
            sql = queries(self.deps.schema)["ack_completed"]
            rows = await conn.fetch(sql, ids, attempts, self.node_id)
            completed = {row[0] for row in rows}
        for a in done:
            if a.job.id in completed:
                a.ctx.ended = OutcomeKind.COMPLETED
            else:  # unreachable while the fence holds the job: kept as the engine's rule
                a.result = ClaimLost(f"job {a.job.id} attempt {a.job.attempt}: claim lost")

    async def _update_rows(
        self, conn: Connection, batched: list[_Attempt], *, guarded: bool, one_by_one: bool
    ) -> None:
        """The update on_success of many rows in one statement. When one row's values
        break it, each row is updated on its own (in a savepoint each), so only that job
        fails: at once when `guarded` (the statement ran in a savepoint), else after the
        batch rolled back (`_RowsRefused`)."""
        name = self.trigger.on_success
        assert name is not None
        action = self.deps.actions.get(self.resource, name)
        assert isinstance(action, UpdateAction)
        contexts = [
            dataclasses.replace(a.action_ctx, response=a.response, conn=conn)
            for a in batched
            if a.action_ctx is not None
        ]
        try:
            if one_by_one:
                raise _RowsRefused
            async with conn.transaction() if guarded else contextlib.nullcontext():
                updated = await action.run_many(conn, contexts)
        except (asyncpg.PostgresError, _RowsRefused) as exc:
            if transient_retry_s(batched[0].job, exc) is not None:
                raise  # the database failed, not a row: the batch is retried as a whole
            if not guarded:
                raise _RowsRefused from exc
            for a, actx in zip(batched, contexts, strict=True):
                try:
                    async with conn.transaction():
                        await action.run(actx)
                except Exception as one:
                    a.failure = one
            return
        for i, a in enumerate(batched):
            if i not in updated:
                a.failure = action.row_gone()

    async def _settle_failure(self, a: _Attempt) -> None:
        """After the batch: a failed attempt is retried, or ends through on_error."""
        exc = a.failure
        assert exc is not None
        a.failure = None
        if transient_retry_s(a.job, exc) is not None:
            a.result = exc  # the database failed, not the action: the engine re-runs it
            return
        structlog.contextvars.bind_contextvars(
            job_id=a.job.id, queue=a.job.queue, worker=a.job.worker
        )
        try:
            await _failed(self.deps, self.resource, self.trigger, a.job, a.ctx, exc, a.logger)
        except Exception as ended:
            a.result = ended

    async def _actor_of(self, a: _Attempt, conn: Any) -> dict[str, Any] | None:
        return await _actor(self.trigger, a.job, conn)

    def _context(self, a: _Attempt, conn: Any) -> ActionContext:
        assert self.table is not None
        return _action_context(
            a.job,
            self.resource,
            self.trigger,
            conn,
            a.logger,
            a.row,
            self.table,
            self.table_sql,
            a.actor,
        )


def _action_context(
    job: Job,
    resource: Resource,
    trigger: Trigger,
    conn: Any,
    logger: Any,
    row: Mapping[str, Any] | None,
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
        event=job.args.get("event"),
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
        found = await conn.fetchrow(sql, job.args.get("pk") or {})
        row = None if found is None else dict(found.items())
        if row is None and job.args.get("event") == "delete":
            row = dict(job.args.get("old") or {})  # the deleted row, as its job carries it
        actor = await _actor(trigger, job, conn)
        actx = _action_context(
            job, resource, trigger, conn, logger, row, table, table_sql, actor, error
        )
        await deps.actions.get(resource, on_error).run(actx)
        # on_error's writes and the job's end (completed with the error kept, or discarded)
        # commit together: a crash in between cannot run on_error twice or lose its writes.
        entry = error_entry(job, error["message"], error["kind"])
        await (ctx.complete_in(conn, entry) if complete else ctx.discard_in(conn, entry))
