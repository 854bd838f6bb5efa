"""Lifeline (leader service): rescue the jobs of nodes that stopped heartbeating.

A node is dead when its heartbeat is older than `3 * heartbeat_s` (database clock). Its
executing jobs, and executing jobs whose `attempted_by` names no node row at all, go back
to `available` with their attempt not counted (a crash is not the job's failure),
`meta.rescued` incremented and an error entry of kind `rescued`. A job rescued more than
`max_rescues` times (a job that keeps killing its node) is ended by the producer that next
claims it, as a final failure (a trigger's `on_error` runs). The attempt that died cannot
overwrite the rescue: every ack is fenced on (state, node, attempt). Once a dead node
holds no executing job its row is deleted (a node that was only slow re-registers).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from jobd.engine.config import EngineConfig
from jobd.engine.events import emit_job_ended
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import OutcomeKind
from jobd.sql import queries
from jobd.sql.driver import Connection

log = structlog.get_logger("jobd.engine")

RESCUE_BATCH = 1_000
MAX_BATCHES = 20
MISSED_BEATS = 3  # heartbeats a node may miss before it is dead


def dead_cutoff(config: EngineConfig, now: datetime) -> datetime:
    """Heartbeats older than this are dead."""
    return now - timedelta(seconds=MISSED_BEATS * config.heartbeat_s)


async def lifeline_once(
    conn: Connection, config: EngineConfig, now: datetime, *, batch: int = RESCUE_BATCH
) -> int:
    """Rescue orphaned jobs and delete dead nodes as of `now`; returns jobs rescued."""
    q = queries(config.schema)
    cutoff = dead_cutoff(config, now)
    notify = channel(config.schema, INSERT_CHANNEL)
    total = 0
    for _ in range(MAX_BATCHES):
        rows = await conn.fetch(q["lifeline_rescue"], cutoff, batch, now, notify)
        for row in rows:
            emit_job_ended(
                OutcomeKind.RESCUED,
                row["id"],
                row["queue"],
                row["worker"],
                row["attempt"],
                extra={"node_id": row["attempted_by"], "rescued": row["rescued"]},
            )
        total += len(rows)
        if rows:
            dead = sorted({str(row["attempted_by"]) for row in rows})
            log.warning("jobs.rescued", count=len(rows), node_ids=dead)
        if len(rows) < batch:
            break
    for node in await conn.fetch(q["lifeline_dead_nodes"], cutoff):
        log.warning("node.dead", node_id=node["id"], heartbeat_at=node["heartbeat_at"].isoformat())
    return total
