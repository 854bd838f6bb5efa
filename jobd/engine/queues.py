"""Queue control: pause, resume and scale, persisted in `{schema}.queues`, seen by all nodes.

A queue's effective settings are its configuration overlaid with its row in the queues
table (if any): `paused`, `local_limit` (replaces the configured per-node limit) and
`global_limit` (replaces the configured one; NULL in the row = the configured value).
Every change is written and announced on the `jobd_signal` channel in one transaction;
each node re-reads the table on the signal (and at start, and when its notifier
reconnects, since signals sent while it was away are lost).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import structlog

from jobd.engine.config import QueueConfig
from jobd.engine.insert import SIGNAL_CHANNEL, channel, signal_payload
from jobd.errors import JobdError
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool, Record

log = structlog.get_logger("jobd.engine")

_GLOBAL_LOCK_NAMESPACE = 0x6A716C  # "jql": global-limit fetch locks


@dataclass(frozen=True, slots=True)
class QueueState:
    """What a producer obeys right now."""

    name: str
    limit: int
    global_limit: int | None = None
    paused: bool = False


def effective(config: QueueConfig, row: Record | None, slack: int | None = None) -> QueueState:
    """`config` overlaid with its queues-table row (a mapping with the table's columns).

    A runtime scale above the configured limit may take at most `slack` more (the pool's
    connections no configured limit claims; None: no bound): every running job may hold a
    connection, and a pool emptied by jobs would starve the engine's own work. Beyond
    that the limit is capped and `queue.scale_capped` says so."""
    if row is None:
        return QueueState(config.name, config.limit, config.global_limit, False)
    limit = row["local_limit"] or config.limit
    if slack is not None and limit > config.limit + slack:
        log.warning(
            "queue.scale_capped",
            queue=config.name,
            requested=limit,
            limit=config.limit + slack,
            reason="the pool has no connection for more jobs at once: raise database.pool_size",
        )
        limit = config.limit + slack
    global_limit = row["global_limit"] or config.global_limit
    return QueueState(config.name, limit, global_limit, bool(row["paused"]))


async def read_rows(conn: Connection, schema: str) -> dict[str, Any]:
    """The queues table by queue name."""
    rows = await conn.fetch(queries(schema)["queue_settings"])
    return {row["name"]: row for row in rows}


def global_lock_key(schema: str, queue: str) -> int:
    """The advisory lock key serializing global_limit fetches of `queue` (signed bigint)."""
    digest = zlib.crc32(f"{schema}\x00{queue}".encode())
    return (_GLOBAL_LOCK_NAMESPACE << 32 | digest) - (1 << 63)


async def _write_and_signal(
    pool: Pool, schema: str, name: str, query: str, *args: Any, action: str
) -> None:
    if not name:
        raise JobdError("queue name must not be empty")
    q = queries(schema)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(q[query], name, *args)
        payload = signal_payload(action=action, queue=name)
        await conn.execute(q["queue_signal"], channel(schema, SIGNAL_CHANNEL), payload)


async def set_paused(pool: Pool, schema: str, name: str, paused: bool) -> None:
    """Pause (or resume) `name` on every node, persistently."""
    action = "pause" if paused else "resume"
    await _write_and_signal(pool, schema, name, "queue_pause", paused, action=action)
    log.info("queue.paused" if paused else "queue.resumed", queue=name)


async def set_limits(
    pool: Pool,
    schema: str,
    name: str,
    limit: int | None,
    *,
    global_limit: int | None = None,
    set_global: bool = False,
) -> None:
    """Scale `name`: per-node `limit` (None = back to the configured one) and, when
    `set_global`, its `global_limit` (None = the configured one)."""
    for value in (limit, global_limit):
        if value is not None and value < 1:
            raise JobdError(f"queue {name!r}: a limit must be at least 1, got {value}")
    await _write_and_signal(
        pool, schema, name, "queue_scale", limit, global_limit, set_global, action="scale"
    )
    log.info("queue.scaled", queue=name, limit=limit, global_limit=global_limit)
