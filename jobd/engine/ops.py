"""What an operator does to jobd's tables, with or without a daemon running: list and
inspect jobs, retry and cancel them, read queue depths and the cluster's status.

    rows = await list_jobs(conn, "jobd", state="discarded", limit=20)
    await retry_job(conn, "jobd", 42)      # True when the job went back to available

The CLI (`jobd jobs`, `jobd queues`, `jobd status`) and the admin JSON API call these.
Queue pause/resume/scale go through `jobd.engine.queues` (persisted and signalled to every
node); `pause_queue` & co. here only add a name check.

Cancel semantics: any incomplete job can be cancelled, executing ones included. A running
attempt is not interrupted (jobd cannot stop arbitrary code), but the job row is
`cancelled` at once, `meta.cancel_requested` says it was running, and the attempt's fenced
ack then matches nothing: a trigger worker's transaction (its database writes, on_success)
rolls back; side effects outside the database (an HTTP call already sent) remain.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobd.engine import queues as engine_queues
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import JobState
from jobd.errors import UsageError
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool

MAX_LIST_LIMIT = 10_000


def _check_state(state: str | None) -> None:
    if state is not None and state not in set(JobState):
        raise UsageError(f"unknown job state {state!r}; use one of: {', '.join(JobState)}")


async def list_jobs(
    conn: Connection,
    schema: str,
    *,
    state: str | None = None,
    queue: str | None = None,
    worker: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Jobs, newest first, without args/meta/errors (see `get_job`)."""
    _check_state(state)
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise UsageError(f"limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}")
    rows = await conn.fetch(queries(schema)["ops_list_jobs"], state, queue, worker, limit)
    return [dict(row.items()) for row in rows]


async def get_job(conn: Connection, schema: str, job_id: int) -> dict[str, Any] | None:
    """One job with args, meta and errors; None when there is no such job."""
    row = await conn.fetchrow(queries(schema)["ops_get_job"], job_id)
    return None if row is None else dict(row.items())


async def retry_job(conn: Connection, schema: str, job_id: int) -> bool:
    """Make a job available now (not when available or executing); False when it was not
    retried (no such job, or in one of those states)."""
    q = queries(schema)
    async with conn.transaction():
        row = await conn.fetchrow(q["ops_retry_job"], job_id)
        if row is None:
            return False
        # Wake the queue's producers at once instead of at their next poll.
        await conn.execute(q["queue_signal"], channel(schema, INSERT_CHANNEL), row["queue"])
    return True


async def cancel_job(conn: Connection, schema: str, job_id: int) -> bool:
    """Cancel an incomplete job (see module docs for executing ones); False when there is
    no such job or it already ended."""
    entry = {
        "at": datetime.now(UTC).isoformat(),
        "attempt": None,
        "error": "cancelled by operator",
        "kind": "cancel",
    }
    # The connection has jobd's jsonb codec (jobd.sql.db): the dict goes in as is.
    found = await conn.fetchval(queries(schema)["ops_cancel_job"], job_id, entry)
    return found is not None


async def queue_depths(conn: Connection, schema: str) -> dict[str, dict[str, int]]:
    """Job counts by queue, then state (only states with jobs appear)."""
    depths: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(queries(schema)["queue_counts"]):
        depths.setdefault(row["queue"], {})[row["state"]] = int(row["n"])
    return depths


async def queue_settings(conn: Connection, schema: str) -> dict[str, dict[str, Any]]:
    """Runtime overrides by queue (paused, local_limit, global_limit)."""
    rows = await engine_queues.read_rows(conn, schema)
    return {
        name: {
            "paused": bool(row["paused"]),
            "local_limit": row["local_limit"],
            "global_limit": row["global_limit"],
        }
        for name, row in rows.items()
    }


async def list_queues(
    conn: Connection, schema: str, configured: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Every queue known from the configuration, the settings table or the jobs table:
    its limit (configured, overridden by scale), paused flag, and depth by state."""
    depths = await queue_depths(conn, schema)
    settings = await queue_settings(conn, schema)
    names = sorted(set(configured or {}) | set(depths) | set(settings))
    result = []
    for name in names:
        setting = settings.get(name, {})
        result.append(
            {
                "name": name,
                "paused": bool(setting.get("paused", False)),
                "limit": setting.get("local_limit") or (configured or {}).get(name),
                "global_limit": setting.get("global_limit"),
                "depth": depths.get(name, {}),
            }
        )
    return result


async def status(conn: Connection, schema: str) -> dict[str, Any]:
    """Nodes (heartbeat age, leader flag), the leader, queue depths and settings."""
    q = queries(schema)
    nodes = [dict(row.items()) for row in await conn.fetch(q["ops_nodes"])]
    leader = await conn.fetchrow(q["ops_leader"])
    return {
        "nodes": nodes,
        "leader": None if leader is None else dict(leader.items()),
        "queues": await queue_depths(conn, schema),
        "queue_settings": await queue_settings(conn, schema),
    }


def _check_queue(name: str) -> None:
    if not name or len(name) > 128:
        raise UsageError(f"queue name must be 1 to 128 characters, got {name!r}")


async def pause_queue(pool: Pool, schema: str, name: str) -> None:
    _check_queue(name)
    await engine_queues.set_paused(pool, schema, name, True)


async def resume_queue(pool: Pool, schema: str, name: str) -> None:
    _check_queue(name)
    await engine_queues.set_paused(pool, schema, name, False)


async def scale_queue(pool: Pool, schema: str, name: str, limit: int | None) -> None:
    """Set the per-node limit of `name` on every node (None: back to the configured one)."""
    _check_queue(name)
    if limit is not None and limit < 1:
        raise UsageError(f"queue {name!r}: the limit must be at least 1, got {limit}")
    await engine_queues.set_limits(pool, schema, name, limit)


def to_jsonable(value: Any) -> Any:
    """Rows as JSON-ready values (datetimes as ISO 8601 text)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
