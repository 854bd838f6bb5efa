"""Stager (leader service): scheduled and retryable jobs whose time has come become
available, and the producers of their queues are woken by a notification.

Also runs the uniq-hold sweep: a terminal job keeps blocking its `uniq_key` for the seconds
its `uniq_hold` names under its state; once they passed, the key is cleared so it can be
used again. Both work in bounded batches and stop at the first short batch or after
`MAX_BATCHES` (the next run continues), so one run never holds the leader up for long.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from jobd.engine.config import EngineConfig
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.sql import queries
from jobd.sql.driver import Connection

log = structlog.get_logger("jobd.engine")

STAGE_BATCH = 5_000
SWEEP_BATCH = 1_000
MAX_BATCHES = 20


async def stage_once(
    conn: Connection, config: EngineConfig, now: datetime | None, *, batch: int = STAGE_BATCH
) -> int:
    """Stage jobs due at `now` (database time; None: the database's now); returns how
    many became available."""
    sql = queries(config.schema)["stage_due"]
    notify_channel = channel(config.schema, INSERT_CHANNEL)
    total = 0
    for _ in range(MAX_BATCHES):
        rows = await conn.fetch(sql, now, batch, notify_channel)
        staged = sum(int(row["staged"]) for row in rows)
        total += staged
        for row in rows:
            log.debug("jobs.staged", queue=row["queue"], count=int(row["staged"]))
        if staged < batch:
            break
    return total


async def sweep_uniq_holds_once(
    conn: Connection, config: EngineConfig, now: datetime | None, *, batch: int = SWEEP_BATCH
) -> int:
    """Clear the unique keys whose hold expired by `now` (None: the database's now);
    returns how many were cleared."""
    sql = queries(config.schema)["uniq_hold_sweep"]
    total = 0
    for _ in range(MAX_BATCHES):
        status = await conn.execute(sql, now, batch)
        cleared = int(status.split()[-1])
        total += cleared
        if cleared < batch:
            break
    if total:
        log.debug("jobs.uniq_released", count=total)
    return total
