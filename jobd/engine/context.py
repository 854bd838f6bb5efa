"""What a worker gets besides its job: the node, the pool, and a fenced completion that
runs inside the worker's own transaction (so its writes and the job's completion commit
together, or not at all)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobd.sql import queries

if TYPE_CHECKING:
    from jobd.engine.jobs import Job


class JobContext:
    """Handed to every worker call with the job.

    `complete_in(conn)` completes the job on the caller's connection (in the caller's
    transaction); it returns False when the claim was lost (the job was rescued and claimed
    again), and the caller must then roll back. `discard_in(conn, error)` does the same for
    a discard. A worker that returns normally without calling either has its job completed
    by the engine (batched). Call them last, just before the commit: if the commit fails,
    the exception wins and the engine records a failed attempt.
    """

    __slots__ = ("ended", "job", "node_id", "pool", "schema")

    def __init__(self, job: Job, node_id: str, pool: Any, schema: str = "jobd") -> None:
        self.job = job
        self.node_id = node_id
        self.pool = pool
        self.schema = schema
        self.ended: str | None = None  # "completed" / "discarded" once the worker ended it

    @property
    def completed(self) -> bool:
        """True once `complete_in` succeeded (the engine then does not ack again)."""
        return self.ended == "completed"

    async def complete_in(self, conn: Any, error: dict[str, Any] | None = None) -> bool:
        """The fenced completion of this attempt, executed on `conn`; `error` is kept in
        the job's errors (a failure that a follow-up handled, e.g. a trigger's on_error)."""
        row = await conn.fetchval(
            queries(self.schema)["ack_completed_one"],
            self.job.id,
            self.job.attempt,
            self.node_id,
            error,
        )
        self.ended = "completed" if row is not None else None
        return row is not None

    async def discard_in(self, conn: Any, error: dict[str, Any]) -> bool:
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
        self.ended = "discarded" if row is not None else None
        return row is not None
