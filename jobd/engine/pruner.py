"""Pruner (leader service): delete terminal jobs older than their state's retention.

`config.retention_s` maps a terminal state (completed, cancelled, discarded) to seconds; a
state missing from it (or with an infinite retention) is kept forever. Deletes go in
batches of `config.prune_batch` (`DELETE ... WHERE id IN (SELECT ... LIMIT n)`, so no
statement holds many locks or runs long) and stop at the first short batch or after
`MAX_BATCHES` per state: a large backlog is worked off over several runs.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import structlog

from jobd.engine.config import EngineConfig
from jobd.engine.jobs import TERMINAL_STATES
from jobd.sql import queries
from jobd.sql.driver import Connection

log = structlog.get_logger("jobd.engine")

MAX_BATCHES = 10


async def prune_once(
    conn: Connection, config: EngineConfig, now: datetime, *, max_batches: int = MAX_BATCHES
) -> int:
    """Delete expired terminal jobs as of `now`; returns how many rows were deleted."""
    sql = queries(config.schema)["prune_state"]
    batch = config.prune_batch
    total = 0
    for state in sorted(TERMINAL_STATES):
        retention_s = config.retention_s.get(state)
        if retention_s is None or math.isinf(retention_s):
            continue
        cutoff = now - timedelta(seconds=retention_s)
        pruned = 0
        for _ in range(max_batches):
            status = await conn.execute(sql, str(state), cutoff, batch)
            deleted = int(status.split()[-1])
            pruned += deleted
            if deleted < batch:
                break
        if pruned:
            log.info("jobs.pruned", state=str(state), count=pruned)
        total += pruned
    return total
