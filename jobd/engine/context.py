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
    again), and the caller must then roll back. A worker that returns normally without
    calling it has its job completed by the engine (batched).
    """

    __slots__ = ("_completed", "job", "node_id", "pool", "schema")

    def __init__(self, job: Job, node_id: str, pool: Any, schema: str = "jobd") -> None:
        self.job = job
        self.node_id = node_id
        self.pool = pool
        self.schema = schema
        self._completed = False

    @property
    def completed(self) -> bool:
        """True once `complete_in` succeeded (the engine then does not ack again)."""
        return self._completed

    async def complete_in(self, conn: Any) -> bool:
        """The fenced completion of this attempt, executed on `conn`."""
        row = await conn.fetchval(
            queries(self.schema)["ack_completed_one"], self.job.id, self.job.attempt, self.node_id
        )
        self._completed = row is not None
        return self._completed
