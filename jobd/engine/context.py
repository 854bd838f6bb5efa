"""What a worker gets besides its job: the node, the pool, and a fenced completion that
runs inside the worker's own transaction (so its writes and the job's completion commit
together, or not at all)."""

from __future__ import annotations

from typing import Any, Protocol

from jobd.engine.jobs import ClaimLost, Job, OutcomeKind
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool


class Refill(Protocol):
    """A batch's completion that also claims its queue's next jobs (the producer's
    `jobd.engine.producer.Refill`): call `complete_and_claim` inside the batch's
    transaction, `committed` after its commit."""

    async def complete_and_claim(
        self, conn: Connection, ids: list[int], attempts: list[int]
    ) -> set[int]: ...

    def committed(self) -> None: ...


class JobContext:
    """Handed to every worker call with the job.

    `complete_in(conn)` completes the job on the caller's connection (in the caller's
    transaction); `discard_in(conn, error)` discards it. Both raise `ClaimLost` when the
    claim was lost (the job was rescued and claimed again, or cancelled): the caller's
    transaction must then roll back, which raising out of it does. A worker that returns
    normally without calling either has its job completed by the engine (batched). Call
    them last, just before the commit: if the commit fails, the exception wins and the
    engine records a failed attempt.
    """

    __slots__ = ("ended", "job", "node_id", "pool", "refill", "schema")

    def __init__(self, job: Job, node_id: str, pool: Pool, schema: str = "jobd") -> None:
        self.job = job
        self.node_id = node_id
        self.pool = pool
        self.schema = schema
        self.ended: OutcomeKind | None = None  # set once the worker ended the job itself
        # For a batch: its completion may claim the queue's next jobs in the same
        # statement (jobd.engine.producer.Refill); None: complete with ack_completed.
        self.refill: Refill | None = None

    @property
    def completed(self) -> bool:
        """True once `complete_in` succeeded (the engine then does not ack again)."""
        return self.ended in (OutcomeKind.COMPLETED, OutcomeKind.HANDLED)

    async def complete_in(self, conn: Connection, error: dict[str, Any] | None = None) -> None:
        """The fenced completion of this attempt, executed on `conn`; `error` is kept in
        the job's errors (a failure that a follow-up handled, e.g. a trigger's on_error)."""
        row = await conn.fetchval(
            queries(self.schema)["ack_completed_one"],
            self.job.id,
            self.job.attempt,
            self.node_id,
            error,
        )
        self._ended(row is not None, OutcomeKind.HANDLED if error else OutcomeKind.COMPLETED)

    async def discard_in(self, conn: Connection, error: dict[str, Any]) -> None:
        """The fenced discard of this attempt on `conn`, recording `error`."""
        row = await conn.fetchval(
            queries(self.schema)["ack_error"],
            self.job.id,
            self.job.attempt,
            self.node_id,
            0.0,
            "discarded",
            error,
        )
        self._ended(row is not None, OutcomeKind.DISCARDED)

    def _ended(self, written: bool, kind: OutcomeKind) -> None:
        if not written:
            self.ended = None
            job = self.job
            raise ClaimLost(f"job {job.id} attempt {job.attempt}: claim lost, rolled back")
        self.ended = kind
