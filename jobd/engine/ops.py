"""What an operator does to jobd's tables, with or without a daemon running: list and
inspect jobs, retry and cancel them, read queue depths and the cluster's status.

    rows = await list_jobs(conn, "jobd", state="discarded", limit=20)
    await retry_job(conn, "jobd", 42)      # True when the job went back to available

The CLI (`jobd jobs`, `jobd queues`, `jobd status`) and the admin JSON API call these.
Queue pause/resume/scale go through `jobd.engine.queues` (persisted and signalled to every
node). What `pause_queue` & co. add is the operator's guard rails: a queue must be named
by the configuration (`configured`) or known to the database (it has jobs or settings),
else `UnknownQueue` with the closest name, so a typo never leaves a phantom queue behind;
`create=True` makes a new one on purpose. `scale_queue` with a `PoolCapacity` refuses a
limit the daemons' connection pool cannot hold. `remove_queue` forgets a queue that no
configuration names and no unfinished job uses.

Cancel semantics: any incomplete job can be cancelled, executing ones included. A running
attempt is not interrupted (jobd cannot stop arbitrary code), but the job row is
`cancelled` at once, `meta.cancel_requested` says it was running, and the attempt's fenced
ack then matches nothing: a trigger worker's transaction (its database writes, on_success)
rolls back; side effects outside the database (an HTTP call already sent) remain.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from jobd.engine import queues as engine_queues
from jobd.engine.insert import INSERT_CHANNEL, SIGNAL_CHANNEL, channel, signal_payload
from jobd.engine.jobs import JobState
from jobd.errors import UsageError, did_you_mean
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool
from jobd.sql.values import text_problem

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
    """Make a job available now (not when available or executing), with its unique key
    back; False when it was not retried (no such job, or in one of those states). Raises
    `UsageError` when another job holds its key now (its row has an incomplete job, or a
    held one): running this one too would run the row twice."""
    q = queries(schema)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(q["ops_retry_job"], job_id)
            if row is None:
                return False
            # Wake the queue's producers at once instead of at their next poll.
            await conn.execute(q["queue_signal"], channel(schema, INSERT_CHANNEL), row["queue"])
    except asyncpg.UniqueViolationError:
        holder = await conn.fetchrow(q["ops_key_holder"], job_id)
        other = f"job {holder['id']} ({holder['state']})" if holder else "another job"
        raise UsageError(
            f"job {job_id} cannot run again: {other} holds its unique key (its row already "
            "has a job); retry or cancel that one instead"
        ) from None
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


async def waiting_for_worker(conn: Connection, schema: str) -> list[dict[str, Any]]:
    """Jobs no live node will claim (none serves their queue and knows their worker), as
    `{queue, worker, jobs}` rows: they wait, they are not lost."""
    rows = await conn.fetch(queries(schema)["ops_waiting_for_worker"])
    return [{"queue": r["queue"], "worker": r["worker"], "jobs": int(r["jobs"])} for r in rows]


async def status(conn: Connection, schema: str) -> dict[str, Any]:
    """Nodes (heartbeat age, leader flag), the leader, queue depths and settings, and the
    jobs that wait for a node that can run them."""
    q = queries(schema)
    nodes = [dict(row.items()) for row in await conn.fetch(q["ops_nodes"])]
    leader = await conn.fetchrow(q["ops_leader"])
    return {
        "nodes": nodes,
        "leader": None if leader is None else dict(leader.items()),
        "queues": await queue_depths(conn, schema),
        "queue_settings": await queue_settings(conn, schema),
        "waiting_for_worker": await waiting_for_worker(conn, schema),
    }


class UnknownQueue(UsageError):
    """No configuration names the queue, and it has neither jobs nor settings."""


class QueueInUse(UsageError):
    """The queue cannot be removed: a configuration names it, or jobs wait in it."""


# A new queue's name follows the configuration's rule for names (`$defs/name` of the
# JSON Schema), so a queue created at runtime can later be configured by that name.
_QUEUE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")


@dataclass(frozen=True)
class PoolCapacity:
    """The connections each daemon's pool has (`size`) and keeps for its own work
    (`headroom`): jobd.daemon.supervisor's `pool_size(spec)` and `POOL_HEADROOM`. Every
    running job may hold a connection, so a queue's limit must fit in what is left."""

    size: int
    headroom: int

    def room(self, configured: Mapping[str, int], name: str) -> int:
        """The most jobs `name` may run at once per node: the pool less the headroom and
        the other queues' configured limits."""
        return self.size - self.headroom - _others(configured, name)

    def check(self, configured: Mapping[str, int], name: str, limit: int) -> None:
        room = self.room(configured, name)
        if limit > room:
            raise UsageError(
                f"queue {name!r}: a limit of {limit} does not fit the daemons' connection "
                f"pool, which has room for at most {max(room, 0)} ({self.size} connections, "
                f"{self.headroom} kept for jobd's own work, {_others(configured, name)} for "
                "the other queues' configured limits); to allow more, raise "
                "database.pool_size and restart the daemons"
            )


def _others(configured: Mapping[str, int], name: str) -> int:
    return sum(limit for queue, limit in configured.items() if queue != name)


def _check_text(name: str) -> None:
    problem = text_problem(name)
    if problem is not None:
        raise UsageError(f"queue name {problem}")


async def require_queue(
    conn: Connection, schema: str, name: str, configured: Collection[str], *, create: bool
) -> None:
    """`name` must be configured or known to the database (jobs or settings); with
    `create`, a new name is accepted if it is a valid name. UnknownQueue otherwise, with
    the closest known name."""
    _check_text(name)
    if name in configured:
        return
    if create:
        if not _QUEUE_NAME.fullmatch(name):
            raise UsageError(
                f"queue name {name!r} is not valid: letters, digits, '_' and '-', starting "
                "with a letter or '_', at most 128 characters"
            )
        return
    q = queries(schema)
    if await conn.fetchval(q["queue_known"], name):
        return
    known = {row["name"] for row in await conn.fetch(q["queue_names"])} | set(configured)
    raise UnknownQueue(
        f"unknown queue {name!r}: no configuration names it and it has no jobs; "
        f"{did_you_mean(name, known)}"
    )


async def pause_queue(
    pool: Pool, schema: str, name: str, *, configured: Collection[str] = (), create: bool = False
) -> None:
    """Pause `name` on every node (see `require_queue` for which names are accepted)."""
    async with pool.acquire() as conn:
        await require_queue(conn, schema, name, configured, create=create)
    await engine_queues.set_paused(pool, schema, name, True)


async def resume_queue(
    pool: Pool, schema: str, name: str, *, configured: Collection[str] = (), create: bool = False
) -> None:
    async with pool.acquire() as conn:
        await require_queue(conn, schema, name, configured, create=create)
    await engine_queues.set_paused(pool, schema, name, False)


async def scale_queue(
    pool: Pool,
    schema: str,
    name: str,
    limit: int | None,
    *,
    configured: Mapping[str, int] | None = None,
    capacity: PoolCapacity | None = None,
    create: bool = False,
) -> None:
    """Set the per-node limit of `name` on every node (None: back to the configured one).
    With `capacity`, a limit the daemons' pool cannot hold is refused."""
    limits = dict(configured or {})
    if limit is not None and limit < 1:
        raise UsageError(f"queue {name!r}: the limit must be at least 1, got {limit}")
    if limit is not None and capacity is not None:
        capacity.check(limits, name, limit)
    async with pool.acquire() as conn:
        await require_queue(conn, schema, name, limits, create=create)
    await engine_queues.set_limits(pool, schema, name, limit)


async def remove_queue(pool: Pool, schema: str, name: str, *, configured: Collection[str]) -> None:
    """Forget a queue no configuration names: its settings row goes (and every node re-reads
    the settings). Refused (QueueInUse) while it is configured or has jobs that have not
    ended; jobs that ended keep its name in listings until they are pruned."""
    if name in configured:
        raise QueueInUse(
            f"queue {name!r} is in the configuration: remove it there and reload or restart "
            "the daemons; only a queue no configuration names can be removed"
        )
    q = queries(schema)
    async with pool.acquire() as conn, conn.transaction():
        await require_queue(conn, schema, name, configured, create=False)
        waiting = await conn.fetchval(q["queue_incomplete"], name)
        if waiting:
            raise QueueInUse(
                f"queue {name!r} has {waiting} job(s) that have not ended and no daemon "
                f"would run them: cancel them first (jobd jobs list --queue {name})"
            )
        await conn.execute(q["queue_remove"], name)
        payload = signal_payload(action="remove", queue=name)
        await conn.execute(q["queue_signal"], channel(schema, SIGNAL_CHANNEL), payload)


def to_jsonable(value: Any) -> Any:
    """Rows as JSON-ready values (datetimes as ISO 8601 text)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
