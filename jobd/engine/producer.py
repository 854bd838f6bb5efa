"""One producer per queue: fetch by demand, run each job as a task, hand outcomes to the
Acker.

Hot path per cycle: ONE statement (`ack_and_fetch`) writes the completions waiting in
the acker (fenced) and claims `limit - running` jobs: one round trip, one commit. Each job
runs as an asyncio task with its worker's timeout; a finished job frees its slot at once
and wakes the producer, whose next statement carries that completion. On a quiet queue
the acker writes completions itself a few milliseconds later. Capacity is freed when the
worker returns, not when its ack is written: `limit` bounds concurrently running workers
(executing rows of this node exceed it only by completions not yet written).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from jobd.engine.acker import Acker, Completion, Outcome
from jobd.engine.context import JobContext
from jobd.engine.events import emit_fail, emit_job_ended, emit_start, job_keys
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import ClaimLost, Job, OutcomeKind
from jobd.engine.queues import QueueState, global_lock_key
from jobd.engine.registry import Registered, WorkerRegistry
from jobd.errors import JobdError
from jobd.outcomes import Cancel, Discard, Snooze, failure_kind
from jobd.sql import queries, with_demand
from jobd.sql.db import backoff_s, is_conflict, is_outage, is_transient
from jobd.sql.driver import Executor, Pool, Record
from jobd.telemetry import EMPTY, emit

log = structlog.get_logger("jobd.engine")

MAX_ERROR_CHARS = 8000  # traceback text kept per error entry
# Fetch statements a busy producer keeps in flight. 2 overlaps one statement's commit
# with the next; measured on 2 cores it did not beat 1 (smaller batches, more statements)
# unless commits are slow (fsync-bound disk), so the default is 1.
MAX_IN_FLIGHT = 1
COALESCE_S = 0.002  # most a refill of a few slots waits for more slots to free up
# An idle queue's poll while notifications are heard: every way a job becomes available
# notifies its queue (inserts, staging, rescues, releases, moves, retries), so this poll
# only bounds the wait after a lost notification.
SAFETY_POLL_S = 30.0
# A queue's claimed jobs of one batch worker run as this many batches: while one batch's
# statements run in Postgres, the other's actions run here (measured on the trigger path,
# limit 20, 2 cores: two batches of 10 drained 3,400-4,800 rows/s where one of 20 drained
# 3,100-3,500 and four of 5 2,500-3,100).
BATCHES_PER_CLAIM = 2


def job_from_row(row: Record, node_id: str) -> Job:
    """A claimed row (ack_and_fetch's columns after `acked`, in order) as a Job."""
    id_, queue, worker, args, meta, tags, attempt, max_attempts, *rest = row
    priority, inserted_at, scheduled_at, attempted_at, errors = rest
    return Job(
        id_,
        queue,
        worker,
        args,
        meta,
        tags,
        attempt,
        max_attempts,
        priority,
        inserted_at,
        scheduled_at,
        attempted_at,
        node_id,
        errors,
    )


def error_entry(job: Job, error: str, kind: str) -> dict[str, Any]:
    """One entry of a job's `errors` array."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "attempt": job.attempt,
        "error": error[-MAX_ERROR_CHARS:],
        "kind": kind,
    }


def _failure(job: Job, registered: Registered | None, exc: BaseException, kind: str) -> Outcome:
    text = "".join(traceback.format_exception(exc)) if kind == "error" else str(exc)
    emit_fail(job, kind, f"{type(exc).__name__}: {exc}" if kind == "error" else str(exc))
    entry = error_entry(job, text, kind)
    if registered is None or job.attempt >= job.max_attempts:
        return Outcome(OutcomeKind.DISCARDED, job, entry)
    delay_s = registered.backoff_s(job.attempt, job.max_attempts)
    return Outcome(OutcomeKind.RETRIED, job, entry, delay_s)


# A worker failing on a database error did not fail on its own account. An outage (the
# server restarting, unreachable or full) is waited out: the job runs again later without
# using up an attempt (a snooze), for as long as the outage lasts, and the producer pauses
# its fetches meanwhile. A conflict (deadlock, serialization failure) is retried the same
# way up to TRANSIENT_RETRIES times in the job's life; after that it counts as an ordinary
# failure, so a job that always deadlocks still ends.
TRANSIENT_RETRIES = 5
TRANSIENT_RETRY_S = 2.0
MAX_OUTAGE_RETRY_S = 60.0


def transient_retry_s(job: Job, exc: BaseException) -> float | None:
    """Seconds after which `job` runs again, its attempt not counted, when `exc` is the
    database's failure rather than the job's; None: an ordinary failure."""
    snoozed = int(job.meta.get("snoozed", 0))
    if is_outage(exc):
        return float(min(TRANSIENT_RETRY_S * 2 ** min(snoozed, 10), MAX_OUTAGE_RETRY_S))
    if is_conflict(exc) and snoozed < TRANSIENT_RETRIES:
        return TRANSIENT_RETRY_S
    return None


class RescuedTooOften(JobdError):
    """The job's node died while running it more than `max_rescues` times: a job that
    keeps killing its node is a final failure, as if its last attempt had failed."""

    kind = "rescued"
    permanent = True


async def execute(
    job: Job, registered: Registered | None, ctx: JobContext, *, max_rescues: int = 3
) -> Completion | Outcome | None:
    """Run one attempt; returns what the Acker must write (None: the worker completed the
    job itself with `ctx.complete_in`). Cancellation from outside propagates."""
    started = time.perf_counter()
    if registered is None:  # its worker vanished (claims name known workers): let it wait
        return Outcome(OutcomeKind.RELEASED, job)
    rescued = int(job.meta.get("rescued", 0))
    if rescued <= max_rescues:
        run = registered.fn(job, ctx)
    else:
        error = RescuedTooOften(
            f"the job's node died while running it {rescued} times "
            f"(more than engine.max_rescues = {max_rescues})"
        )
        if registered.final_failure is None:
            return _failure(job, None, error, "rescued")
        run = registered.final_failure(job, ctx, error)
    timeout = asyncio.timeout(registered.timeout_s) if registered.timeout_s else None
    try:
        if timeout is None:
            await run
        else:
            async with timeout:
                await run
    except Exception as exc:
        failure: Exception = exc
        if timeout is not None and timeout.expired():
            failure = TimeoutError(f"attempt timed out after {registered.timeout_s}s")
        return settle(job, registered, ctx, failure, started)
    return settle(job, registered, ctx, None, started)


def settle(
    job: Job,
    registered: Registered | None,
    ctx: JobContext,
    exc: Exception | None,
    started: float,
) -> Completion | Outcome | None:
    """What the Acker must write for an attempt that ended with `exc` (None: it returned;
    started: its perf_counter start). None when there is nothing to write: the worker
    ended the job in its own transaction, or its claim was lost."""
    match exc:
        case None:
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            if ctx.ended is not None:  # the worker ended the job in its own transaction
                emit_job_ended(
                    ctx.ended,
                    job.id,
                    job.queue,
                    job.worker,
                    job.attempt,
                    {"duration_ms": duration_ms},
                )
                return None
            return (job.id, job.attempt, job.queue, job.worker, duration_ms)
        case Snooze():
            return Outcome(OutcomeKind.SNOOZED, job, None, exc.seconds)
        case Cancel():
            return Outcome(OutcomeKind.CANCELLED, job, error_entry(job, exc.reason, "cancel"))
        case Discard():
            return Outcome(OutcomeKind.DISCARDED, job, error_entry(job, exc.reason, "discard"))
        case ClaimLost():  # nothing of the attempt committed and there is nothing to ack
            keys = job_keys(job.id, job.queue, job.worker, job.attempt)
            emit("job.claim_lost", EMPTY, {**keys, "reason": str(exc)})
            return None
    retry_s = transient_retry_s(job, exc)
    if retry_s is not None:
        keys = job_keys(job.id, job.queue, job.worker, job.attempt)
        emit("job.database_error", EMPTY, {**keys, "error": repr(exc)})
        return Outcome(OutcomeKind.SNOOZED, job, None, retry_s, outage=is_outage(exc))
    return _failure(job, registered, exc, failure_kind(exc))


def by_batch(
    jobs: list[Job], registry: WorkerRegistry, max_rescues: int, max_size: int | None = None
) -> tuple[list[Job], list[list[Job]]]:
    """The claimed jobs split into those run one by one and the batches: the jobs of one
    worker with a batch form go together, at most `max_size` (None: all) to a batch. A job
    rescued too often goes alone: its final failure is the single path's."""
    single: list[Job] = []
    batches: dict[str, list[Job]] = {}
    for job in jobs:
        registered = registry.get(job.worker)
        alone = int(job.meta.get("rescued", 0)) > max_rescues
        if registered is not None and registered.batch is not None and not alone:
            batches.setdefault(job.worker, []).append(job)
        else:
            single.append(job)
    size = max_size or len(jobs) or 1
    return single, [b[i : i + size] for b in batches.values() for i in range(0, len(b), size)]


async def execute_batch(
    jobs: list[Job], registered: Registered, ctxs: list[JobContext]
) -> list[Completion | Outcome | None]:
    """Run the attempts of a batch (`registered.batch`); what the Acker must write for
    each, as `execute` says for one. Cancellation from outside propagates."""
    assert registered.batch is not None
    started = time.perf_counter()
    try:
        results = list(await registered.batch(jobs, ctxs))
    except Exception as failed:  # the batch itself failed: each job's attempt did
        results = [failed] * len(jobs)
    return [
        settle(job, registered, ctx, result, started)
        for job, ctx, result in zip(jobs, ctxs, results, strict=True)
    ]


def hand_over(acker: Acker, result: Completion | Outcome | None) -> None:
    """Give an attempt's result to the acker (synchronous: nothing can interrupt it)."""
    if result is None:
        return
    if isinstance(result, tuple):
        acker.complete(result)
    else:
        acker.record(result)


class Refill:
    """A batch's completion that also claims its queue's next jobs, in ONE statement
    (`ack_and_fetch`, run in the batch's transaction): the batch's commit is the claim's
    too, so a busy queue of batches commits once per batch instead of twice. The claim
    asks for as many jobs as the batch frees; the producer starts them when the batch
    returns, if it committed (`committed`)."""

    def __init__(self, producer: Producer, demand: int) -> None:
        self._producer = producer
        self.demand = demand
        self._pending: list[Job] = []
        self.claimed: list[Job] = []

    async def complete_and_claim(
        self, conn: Executor, ids: list[int], attempts: list[int]
    ) -> set[int]:
        """Complete the jobs `ids` (fenced) and claim the next ones; the ids completed."""
        p = self._producer
        demand = 0 if p._stopping or p.state.paused else self.demand
        rows = await p.claim(conn, demand, ids, attempts, None)
        p.fetches += 1
        self._pending = [job_from_row(row[1:], p.node_id) for row in rows if not row[0]]
        return {row[1] for row in rows if row[0]}

    def committed(self) -> None:
        """The batch's transaction committed: its claims stand."""
        self.claimed, self._pending = self._pending, []


class Producer:
    """Fetches and runs the jobs of one queue on this node."""

    def __init__(
        self,
        state: QueueState,
        *,
        pool: Pool,
        schema: str,
        node_id: str,
        registry: WorkerRegistry,
        acker: Acker,
        poll_interval_s: float,
        max_rescues: int = 3,
    ) -> None:
        self.state = state
        self.pool = pool
        self.schema = schema
        self.node_id = node_id
        self.registry = registry
        self.acker = acker
        self.poll_interval_s = poll_interval_s
        self.max_rescues = max_rescues
        self.running: dict[int, tuple[asyncio.Task[None], Job]] = {}
        self.fetches = 0  # fetch statements run, for tests and metrics
        # The workers whose jobs this node claims: the registered ones but the paused. Jobs
        # of other workers (paused, or unknown here: a rolling deploy, a removed trigger)
        # stay available for a node that runs them.
        self.runnable_workers: list[str] = registry.names()
        self._fetching: set[asyncio.Task[None]] = set()
        self._reserved = 0  # slots promised to fetches in flight
        self._busy = False  # the last fetch got all it asked for: more are likely waiting
        # Demand since the last fetch began: a notification, a settings change. Without it
        # (or `_busy`, or a due poll) an idle queue does not fetch: a fetch that found
        # nothing must not wake the loop into the next one.
        self._poked = True
        self._fetched_at = -math.inf  # when the last fetch began (monotonic)
        # Set (by the engine) while insert notifications are heard: then a poll is only a
        # safety net against a lost one, and an idle queue polls rarely.
        self.notifications: asyncio.Event | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._unsure = False  # a fetch failed mid-flight: its claim may have committed
        self._error: BaseException | None = None
        self._q = queries(schema)
        self._claim_sql: dict[int, str] = {}  # ack_and_claim by claim size
        self._wake = asyncio.Event()
        self._stopping = False
        self._releasing = False
        self._lock_key = global_lock_key(schema, state.name)

    @property
    def name(self) -> str:
        return self.state.name

    def wake(self) -> None:
        """Jobs may be waiting (an insert was notified, a queue signalled): fetch soon."""
        self._poked = True
        self._wake.set()

    def apply(self, state: QueueState) -> None:
        """New settings (pause/resume/scale); takes effect at the next fetch."""
        if state.paused != self.state.paused:
            log.info("queue.paused" if state.paused else "queue.resumed", queue=state.name)
        self.state = state
        self.wake()

    def stop_fetching(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Fetch whenever there is demand, until `stop_fetching()`. Raises (ending the
        supervised task) when a fetch failed with an unexpected error."""
        coalesced = False
        while not self._stopping:
            self._wake.clear()
            if self._error is not None:
                raise self._error
            state = self.state
            free = 0 if state.paused else state.limit - len(self.running) - self._reserved
            if free > 0 and self.acker.backlog >= self.acker.batch_max:
                # Backpressure: acks lag (slow database); claim no more until they land,
                # so executing rows of this node stay bounded.
                await self.acker.wait_idle()
                continue
            # A busy queue may keep MAX_IN_FLIGHT fetches in flight (a share of the limit
            # each), so one statement's commit overlaps the next; an idle or
            # global-limited queue has one.
            pipelined = self._busy and state.global_limit is None
            in_flight_max = MAX_IN_FLIGHT if pipelined else 1
            retry_in_s = self._retry_at - time.monotonic()
            if self._unsure and not self._fetching and retry_in_s <= 0:
                await self._release_unknown_claims()
                continue
            poll_in_s = self._fetched_at + self.poll_every_s() - time.monotonic()
            wanted = self._busy or self._poked or poll_in_s <= 0
            if free > 0 and wanted and len(self._fetching) < in_flight_max and retry_in_s <= 0:
                if self.running and free < state.limit // 4 and not coalesced:
                    # Jobs trickle out: give their neighbours a moment to finish too, so
                    # one statement acks and refills several slots instead of one each.
                    coalesced = True
                    await asyncio.sleep(COALESCE_S)
                    continue
                coalesced = False
                self._poked = False
                self._fetched_at = time.monotonic()
                self._launch(state, min(free, -(-state.limit // in_flight_max)))
                continue
            # Nothing to do now: sleep until woken or a retry is due, at most one poll
            # interval (then look again: the notifier may have gone deaf meanwhile).
            if retry_in_s > 0:
                await self._wait(retry_in_s)
            else:
                every_s = self.poll_interval_s
                await self._wait(poll_in_s if 0 < poll_in_s < every_s else every_s)

    def poll_every_s(self) -> float:
        """How often an idle queue fetches without being told: `poll_interval_s` while no
        notification can arrive, at most every SAFETY_POLL_S while they do."""
        heard = self.notifications is not None and self.notifications.is_set()
        return max(self.poll_interval_s, SAFETY_POLL_S) if heard else self.poll_interval_s

    def _launch(self, state: QueueState, demand: int) -> None:
        self._reserved += demand
        task = asyncio.get_running_loop().create_task(
            self._fetch_and_start(state, demand), name=f"jobd:fetch:{state.name}"
        )
        self._fetching.add(task)

    async def _fetch_and_start(self, state: QueueState, demand: int) -> None:
        try:
            jobs = await self._fetch(state, demand)
            self._failures = 0
            self._busy = len(jobs) == demand
            self._start_all(jobs)
        except Exception as exc:
            self._busy = False
            if not is_transient(exc):
                self._error = exc
            else:
                self._failures += 1
                self._unsure = True
                delay_s = backoff_s(self._failures, max_s=self.poll_interval_s * 5)
                self._retry_at = time.monotonic() + delay_s
                log.warning("queue.fetch_failed", queue=self.name, error=str(exc))
        finally:
            # Bookkeeping before the wake-up (a done-callback would run too late: the loop
            # could see this fetch still in flight and go back to sleep for a poll).
            self._fetching.discard(asyncio.current_task())
            self._reserved -= demand
            self._wake.set()

    async def _release_unknown_claims(self) -> None:
        """Return jobs a lost fetch reply claimed for us but nobody runs (see the query)."""
        known = list(self.running) + list(self.acker.pending_ids())
        try:
            rows = await self.pool.fetch(
                self._q["release_unknown_claims"],
                self.name,
                self.node_id,
                known,
                channel(self.schema, INSERT_CHANNEL),
            )
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._failures += 1
            self._retry_at = time.monotonic() + backoff_s(
                self._failures, max_s=self.poll_interval_s * 5
            )
            return
        self._unsure = False
        if rows:
            log.warning(
                "queue.claims_released",
                queue=self.name,
                count=len(rows),
                reason="a fetch's reply was lost with its connection",
            )

    async def _wait(self, timeout_s: float) -> None:
        if self._wake.is_set() or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()

    async def _fetch(self, state: QueueState, demand: int) -> list[Job]:
        self.fetches += 1
        if state.global_limit is None:
            return await self._ack_and_fetch(self.pool, state, demand)
        async with self.pool.acquire() as conn, conn.transaction():
            # The lock comes first, in its own statement, so the fetch's snapshot (taken
            # per statement) already sees every claim committed before we got the lock.
            await conn.execute(self._q["lock_queue"], self._lock_key)
            return await self._ack_and_fetch(conn, state, demand)

    async def _ack_and_fetch(self, db: Executor, state: QueueState, demand: int) -> list[Job]:
        """Claim jobs and, in the same statement, write the completions waiting in the
        acker: one round trip and one commit per cycle on a busy queue."""
        batch = self.acker.take_completions()
        try:
            ids, attempts = [c[0] for c in batch], [c[1] for c in batch]
            rows = await self.claim(db, demand, ids, attempts, state.global_limit)
        except BaseException:
            self.acker.give_back(batch)
            raise
        node = self.node_id
        jobs = [job_from_row(row[1:], node) for row in rows if not row[0]]
        if batch:
            self.acker.confirm(batch, {row[1] for row in rows if row[0]})
        return jobs

    async def claim(
        self,
        db: Executor,
        demand: int,
        ids: list[int],
        attempts: list[int],
        global_limit: int | None,
    ) -> Sequence[Record]:
        """Complete the jobs `ids` and claim up to `demand` (see `ack_and_fetch`)."""
        if global_limit is not None:
            q, name, node = self._q["ack_and_fetch"], self.name, self.node_id
            workers = self.runnable_workers
            return await db.fetch(q, name, demand, node, ids, attempts, workers, global_limit)
        sql = self._claim_sql.get(demand)
        if sql is None:
            sql = self._claim_sql[demand] = with_demand(self._q["ack_and_claim"], demand)
        return await db.fetch(sql, self.name, self.node_id, ids, attempts, self.runnable_workers)

    def _start_all(self, jobs: list[Job]) -> None:
        """Start the claimed jobs: each batch (`by_batch`) as one task, the others one
        task each."""
        share = -(-self.state.limit // BATCHES_PER_CLAIM)
        single, batches = by_batch(jobs, self.registry, self.max_rescues, share)
        for job in single:
            self._start(job)
        for batch in batches:
            task = asyncio.get_running_loop().create_task(
                self._run_batch(batch), name=f"jobs-{batch[0].id}+{len(batch) - 1}"
            )
            for job in batch:
                self.running[job.id] = (task, job)

    def _start(self, job: Job) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{job.id}")
        self.running[job.id] = (task, job)

    async def _run(self, job: Job) -> None:
        # Bound in this task's own context: the worker's log lines carry them too.
        structlog.contextvars.bind_contextvars(job_id=job.id, queue=job.queue, worker=job.worker)
        emit_start(job)
        ctx = JobContext(job, self.node_id, self.pool, self.schema)
        try:
            registered = self.registry.get(job.worker)
            result = await execute(job, registered, ctx, max_rescues=self.max_rescues)
        except asyncio.CancelledError:
            if self._releasing:
                self.acker.record(Outcome(OutcomeKind.RELEASED, job))
            raise
        finally:
            del self.running[job.id]
            self._wake.set()
        if isinstance(result, Outcome) and result.outage:
            # The database is out: claim nothing more until it is likely back.
            self._retry_at = max(self._retry_at, time.monotonic() + result.delay_s / 2)
        hand_over(self.acker, result)

    async def _run_batch(self, jobs: list[Job]) -> None:
        registered = self.registry.get(jobs[0].worker)
        assert registered is not None and registered.batch is not None  # see _start_all
        ctxs = [JobContext(job, self.node_id, self.pool, self.schema) for job in jobs]
        # A global limit is counted under a lock the batch does not take: no refill then.
        refill = Refill(self, len(jobs)) if self.state.global_limit is None else None
        for ctx in ctxs:
            ctx.refill = refill
        for job in jobs:
            emit_start(job)
        started = time.perf_counter()
        try:
            results = await execute_batch(jobs, registered, ctxs)
        except asyncio.CancelledError:
            # A stop past the grace: the batch committed what had finished (ctx.ended);
            # the others go back to available.
            for job, ctx in zip(jobs, ctxs, strict=True):
                if ctx.ended is not None:
                    hand_over(self.acker, settle(job, registered, ctx, None, started))
                elif self._releasing:
                    self.acker.record(Outcome(OutcomeKind.RELEASED, job))
            raise
        finally:
            for job in jobs:
                del self.running[job.id]
            self._wake.set()
            if refill is not None and refill.claimed:
                self._take_refill(refill)
        for result in results:
            if isinstance(result, Outcome) and result.outage:
                self._retry_at = max(self._retry_at, time.monotonic() + result.delay_s / 2)
            hand_over(self.acker, result)

    def _take_refill(self, refill: Refill) -> None:
        """Start the jobs a batch claimed as it completed (in the slots it just freed), or
        hand them back at once when this producer stops (nobody would run them)."""
        claimed, refill.claimed = refill.claimed, []
        if self._stopping:
            for job in claimed:
                self.acker.record(Outcome(OutcomeKind.RELEASED, job))
            return
        self._busy = len(claimed) == refill.demand
        self._start_all(claimed)

    async def finish(self, grace_s: float) -> int:
        """Graceful stop of running jobs: wait up to `grace_s`, then cancel the rest, whose
        jobs go back to `available` (attempt not counted). Returns how many were cut short."""
        self.stop_fetching()
        if self._fetching:  # claims in flight: their jobs start, then get the grace too
            await asyncio.wait(list(self._fetching))
        tasks = [task for task, _ in self.running.values()]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=max(grace_s, 0.0))
        if not pending:
            return 0
        self._releasing = True
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        return len(pending)
