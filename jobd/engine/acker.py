"""Acknowledgements: the final write of every attempt, batched and fenced.

Job tasks never await the database for their outcome: they hand it to the Acker, which
owns the writes in its own task. That makes the final write immune to the job task's
cancellation (the shielding ARCHITECTURE.md asks for) and lets completions, the common
case, go out many at a time in one statement. Rarer outcomes (retry, discard, cancel,
snooze, release at shutdown) are written one statement each, in the same task.

Every write is fenced (`state = 'executing' AND attempted_by = node AND attempt = n`): an
attempt whose claim was lost writes nothing, and is logged as `job.ack_lost`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from jobd.engine.events import emit_job_ended, emit_lost, emit_outcome
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import Job, JobState, OutcomeKind
from jobd.sql import queries
from jobd.sql.db import backoff_s, is_transient
from jobd.sql.driver import Connection, Pool

log = structlog.get_logger("jobd.engine")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A non-completion outcome: `detail` is the error entry (retried, discarded,
    cancelled) and `delay_s` the seconds until the job runs again (retried, snoozed)."""

    kind: OutcomeKind
    job: Job
    detail: dict[str, Any] | None = None
    delay_s: float = 0.0
    outage: bool = False  # a snooze because the database was out: the producer pauses too


# A completion: (job id, attempt, queue, worker, duration_ms); tuples are cheapest.
Completion = tuple[int, int, str, str, float]


class Acker:
    """Collects outcomes; `run` flushes completions in batches of up to `batch_max`, after
    at most `delay_s` (a short wait lets a burst share one statement)."""

    def __init__(
        self,
        pool: Pool,
        schema: str,
        node_id: str,
        *,
        batch_max: int = 1000,
        delay_s: float = 0.002,
        on_flush: Callable[[dict[OutcomeKind, int]], None] | None = None,
    ) -> None:
        self.pool = pool
        self.node_id = node_id
        self.batch_max = batch_max
        self.delay_s = delay_s
        self.on_flush = on_flush  # called with counts per outcome after each flush
        self._q = queries(schema)
        self._notify = channel(schema, INSERT_CHANNEL)  # releases wake the queue's nodes
        self._completions: list[Completion] = []
        self._outcomes: list[Outcome] = []
        self._pending = asyncio.Event()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0  # completions taken by a producer's statement, not yet written

    # -- called by job tasks (no await: cannot be interrupted half-way) --------------------

    def complete(self, completion: Completion) -> None:
        self._completions.append(completion)
        self._idle.clear()
        self._pending.set()

    def record(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._idle.clear()
        self._pending.set()

    @property
    def backlog(self) -> int:
        return len(self._completions) + len(self._outcomes)

    def pending_ids(self) -> set[int]:
        """Jobs whose outcome is waiting here to be written (still `executing` in the
        database, but known to this node)."""
        return {c[0] for c in self._completions} | {o.job.id for o in self._outcomes}

    # -- piggybacking: a producer's fetch statement may carry completions ----------------

    def take_completions(self) -> list[Completion]:
        """Hand pending completions (up to batch_max) to a producer's fetch statement; it
        must `confirm` them after the statement, or `give_back` them when it failed."""
        batch = self._completions[: self.batch_max]
        del self._completions[: len(batch)]
        self._in_flight += len(batch)
        return batch

    def give_back(self, batch: list[Completion]) -> None:
        self._in_flight -= len(batch)
        if batch:
            self._completions[:0] = batch
            self._idle.clear()
            self._pending.set()

    def confirm(self, batch: list[Completion], done: set[int]) -> None:
        """The completions of `batch` were written (those in `done` passed the fence)."""
        self._in_flight -= len(batch)
        for job_id, attempt, queue, worker, duration_ms in batch:
            if job_id in done:
                emit_job_ended(
                    OutcomeKind.COMPLETED,
                    job_id,
                    queue,
                    worker,
                    attempt,
                    {"duration_ms": duration_ms},
                )
            else:
                emit_lost(job_id, queue, worker, attempt, OutcomeKind.COMPLETED)
        if not self._completions and not self._outcomes and not self._in_flight:
            self._idle.set()

    # -- the flushing task -----------------------------------------------------------------

    async def run(self) -> None:
        """Flush until `close()` was called and nothing is left."""
        failures = 0
        while True:
            if not self._completions and not self._outcomes:
                if not self._in_flight:
                    self._idle.set()
                if self._stopping:
                    return
                self._pending.clear()
                await self._pending.wait()
                # Coming out of idle: wait a moment so a burst shares one statement. Under
                # load there is no wait: what piled up during a flush goes out right after.
                if self.delay_s and not self._stopping:
                    await asyncio.sleep(self.delay_s)
            try:
                await self.flush_once()
                failures = 0
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                log.warning("ack.retry", error=str(exc), failures=failures)
                await asyncio.sleep(backoff_s(failures))

    def close(self) -> None:
        """Let `run` return once every outcome is written."""
        self._stopping = True
        self._pending.set()

    async def wait_idle(self) -> None:
        """Until everything recorded so far is written."""
        await self._idle.wait()

    async def flush_once(self) -> dict[OutcomeKind, int]:
        """Write one batch of completions and all other outcomes recorded so far.

        Completions are taken out of the queue before the write, exactly as a producer's
        fetch statement takes them (`take_completions`), so the two can never write the
        same completion or drop one the other took; a failed write gives them back."""
        counts: dict[OutcomeKind, int] = {}
        outcomes = list(self._outcomes)
        if not self._completions and not outcomes:
            return counts
        async with self.pool.acquire() as conn:
            batch = self.take_completions()  # after acquiring: a failed acquire takes none
            if batch:
                try:
                    rows = await conn.fetch(
                        self._q["ack_completed"],
                        [c[0] for c in batch],
                        [c[1] for c in batch],
                        self.node_id,
                    )
                except BaseException:
                    self.give_back(batch)
                    raise
                self.confirm(batch, {row[0] for row in rows})
                counts[OutcomeKind.COMPLETED] = len(batch)
            for outcome in outcomes:
                await self._write_outcome(conn, outcome)
                self._outcomes.remove(outcome)
                counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        if self.on_flush is not None:
            self.on_flush(counts)
        return counts

    async def _write_outcome(self, conn: Connection, o: Outcome) -> None:
        job, q, node = o.job, self._q, self.node_id
        if o.kind in (OutcomeKind.RETRIED, OutcomeKind.DISCARDED):
            state = JobState.RETRYABLE if o.kind == OutcomeKind.RETRIED else JobState.DISCARDED
            row = await conn.fetchval(
                q["ack_error"], job.id, job.attempt, node, o.delay_s, state, o.detail
            )
        elif o.kind == OutcomeKind.CANCELLED:
            row = await conn.fetchval(q["ack_cancel"], job.id, job.attempt, node, o.detail)
        elif o.kind == OutcomeKind.SNOOZED:
            row = await conn.fetchval(q["ack_snooze"], job.id, job.attempt, node, o.delay_s)
        else:
            row = await conn.fetchval(
                q["release_jobs"], [job.id], [job.attempt], node, self._notify
            )
        if row is None:
            emit_lost(job.id, job.queue, job.worker, job.attempt, o.kind)
        else:
            emit_outcome(o.kind, job, o.delay_s, (o.detail or {}).get("error"))
