"""Run jobs until none of the registry's workers is available: a synchronous-feeling
helper for tests (jobs of other workers wait, as on any node that does not know them).

`drain` stages scheduled and retryable jobs whose time has come (what the leader's
stager does in production), then fetches and runs available jobs fetch by fetch with the
same code path as the producers (execute, or execute_batch for the jobs of a worker with
a batch form, then fenced acks), until nothing is left.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

from jobd.engine.acker import Acker, Completion, Outcome
from jobd.engine.config import new_node_id
from jobd.engine.context import JobContext
from jobd.engine.jobs import Job, OutcomeKind
from jobd.engine.producer import by_batch, execute, execute_batch, hand_over, job_from_row
from jobd.engine.registry import WorkerRegistry
from jobd.errors import JobdError
from jobd.sql import queries
from jobd.sql.driver import Pool

# What drain reports: each kind of outcome, a handled failure counted with the completed
# (its job is completed); releases do not happen in a drain.
REPORTED = (
    OutcomeKind.COMPLETED,
    OutcomeKind.RETRIED,
    OutcomeKind.DISCARDED,
    OutcomeKind.CANCELLED,
    OutcomeKind.SNOOZED,
)


async def drain(
    pool: Pool,
    registry: WorkerRegistry,
    *,
    schema: str = "jobd",
    queues: Sequence[str] | None = None,
    timeout_s: float = 30.0,
    batch: int = 100,
    max_rescues: int = 3,
) -> dict[OutcomeKind, int]:
    """Run jobs of `queues` (None = all) until none is available; returns counts by
    outcome: completed, retried, discarded, cancelled, snoozed."""
    q = queries(schema)
    node_id = new_node_id("drain")
    acker = Acker(pool, schema, node_id, delay_s=0)
    counts: Counter[OutcomeKind] = Counter()
    deadline = time.monotonic() + timeout_s
    wanted = list(queues) if queues is not None else None
    while True:
        if time.monotonic() > deadline:
            raise JobdError(f"drain did not finish within {timeout_s}s: {dict(counts)}")
        await pool.execute(q["drain_stage_due"], wanted)
        names = [row[0] for row in await pool.fetch(q["drain_queues"], wanted, registry.names())]
        if not names:
            break
        for name in names:
            claim: tuple[object, ...] = (name, batch, node_id, [], [], registry.names(), None)
            rows = await pool.fetch(q["ack_and_fetch"], *claim)
            jobs = [job_from_row(row[1:], node_id) for row in rows]
            contexts = {job.id: JobContext(job, node_id, pool, schema) for job in jobs}
            single, groups = by_batch(jobs, registry, max_rescues)
            ones = asyncio.gather(
                *(
                    execute(j, registry.get(j.worker), contexts[j.id], max_rescues=max_rescues)
                    for j in single
                )
            )
            many = asyncio.gather(*(_batch(group, registry, contexts) for group in groups))
            results, batched = await asyncio.gather(ones, many)
            for c in contexts.values():  # jobs their worker ended itself (in its transaction)
                if c.ended is not None:
                    counts[c.ended] += 1
            for result in [*results, *(r for group in batched for r in group)]:
                hand_over(acker, result)
            while acker.backlog:
                counts.update(await acker.flush_once())
    counts[OutcomeKind.COMPLETED] += counts.pop(OutcomeKind.HANDLED, 0)
    return {kind: counts.get(kind, 0) for kind in REPORTED}


async def _batch(
    jobs: list[Job], registry: WorkerRegistry, contexts: dict[int, JobContext]
) -> list[Completion | Outcome | None]:
    registered = registry.get(jobs[0].worker)
    assert registered is not None  # by_batch groups known workers only
    return await execute_batch(jobs, registered, [contexts[job.id] for job in jobs])
