"""What the console's pages show, read with the named queries of jobd/sql/queries/
(console.sql for the reads that must stay on an index over millions of jobs; ops.sql
through jobd.engine.ops for queues, a job, nodes).

Counting every job of a big table takes a scan of all of it, so the console counts
what an operator acts on: every incomplete job (on the engine's partial indexes), and
the jobs that ended within the last hour (on `jobs_terminal`). Pages say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jobd.admin.plumbing import AdminDeps
from jobd.common.cron import cron_iter
from jobd.console.filters import JobFilter
from jobd.engine import ops
from jobd.engine.jobs import JobState
from jobd.model import Spec
from jobd.sql import queries
from jobd.sql.driver import Connection

WINDOW_S = 3600.0  # ended jobs are counted over this window
CHART_MINUTES = 60
PAGE_SIZE = 50
WINDOW_IDS = 50_000  # job ids a filtered page (or a row's jobs) reads at most: ~30 ms
INCOMPLETE = ("available", "scheduled", "executing", "retryable")
STATES = tuple(JobState)


@dataclass
class Counts:
    """Jobs by (queue, worker, state): incomplete ones, and ended ones in WINDOW_S."""

    rows: list[tuple[str, str, str, int]] = field(default_factory=list)

    def by(self, index: int) -> dict[str, dict[str, int]]:
        """{queue (index 0) or worker (1): {state: jobs}}."""
        grouped: dict[str, dict[str, int]] = {}
        for row in self.rows:
            states = grouped.setdefault(str(row[index]), {})
            states[row[2]] = states.get(row[2], 0) + row[3]
        return grouped

    def total(self, state: str) -> int:
        return sum(row[3] for row in self.rows if row[2] == state)


async def counts(conn: Connection, schema: str) -> Counts:
    q = queries(schema)
    async with conn.transaction():
        await conn.execute(q["console_read_settings"])
        rows = await conn.fetch(q["console_counts"], WINDOW_S)
    return Counts([(r["queue"], r["worker"], r["state"], int(r["n"])) for r in rows])


def configured_queues(spec: Spec | None) -> dict[str, int]:
    return {} if spec is None else {name: q.limit for name, q in spec.queues.items()}


async def queue_rows(
    conn: Connection, schema: str, spec: Spec | None, by_queue: Mapping[str, Mapping[str, int]]
) -> list[dict[str, Any]]:
    """Every queue the configuration, the settings or the jobs name: limits (runtime
    settings over the configuration), paused, jobs by state."""
    configured = {} if spec is None else dict(spec.queues)
    settings = await ops.queue_settings(conn, schema)
    rows = []
    for name in sorted(set(configured) | set(settings) | set(by_queue)):
        queue, setting = configured.get(name), settings.get(name, {})
        rows.append(
            {
                "name": name,
                "configured": queue is not None,
                "paused": bool(setting.get("paused", False)),
                "limit": setting.get("local_limit") or (queue.limit if queue else None),
                "global_limit": setting.get("global_limit")
                or (queue.global_limit if queue else None),
                "states": dict(by_queue.get(name, {})),
            }
        )
    return rows


async def nodes(conn: Connection, schema: str) -> list[dict[str, Any]]:
    return [dict(row.items()) for row in await conn.fetch(queries(schema)["ops_nodes"])]


@dataclass(frozen=True)
class Bar:
    minute: int  # minutes ago
    succeeded: int
    failed: int
    cancelled: int


async def throughput(conn: Connection, schema: str) -> list[Bar]:
    """Jobs ended per minute over the last CHART_MINUTES, oldest first."""
    found: dict[int, dict[str, int]] = {}
    q = queries(schema)
    async with conn.transaction():
        await conn.execute(q["console_read_settings"])
        rows = await conn.fetch(q["console_throughput"], CHART_MINUTES)
    for row in rows:
        found.setdefault(int(row["minute"]), {})[row["outcome"]] = int(row["n"])
    bars = []
    for minute in range(CHART_MINUTES - 1, -1, -1):
        got = found.get(minute, {})
        bars.append(
            Bar(minute, got.get("succeeded", 0), got.get("failed", 0), got.get("cancelled", 0))
        )
    return bars


async def overview(deps: AdminDeps) -> dict[str, Any]:
    async with deps.pool.acquire() as conn:
        found = await counts(conn, deps.schema)
        queues = await queue_rows(conn, deps.schema, deps.spec, found.by(0))
        node_rows = await nodes(conn, deps.schema)
        bars = await throughput(conn, deps.schema)
    return {
        "queues": queues,
        "nodes": node_rows,
        "totals": {state: found.total(state) for state in STATES},
        "bars": bars,
        "bar_max": max([b.succeeded + b.failed + b.cancelled for b in bars] + [1]),
        "window_minutes": int(WINDOW_S // 60),
        "this_node": None if deps.engine is None else deps.engine.node_id,
    }


@dataclass(frozen=True)
class Page:
    """One page of jobs; `next_before` continues it (None: nothing older); a filtered
    page says which ids it looked at (`window`: low, high), as it looks at WINDOW_IDS
    ids at most."""

    jobs: list[dict[str, Any]]
    next_before: int | None
    window: tuple[int, int] | None


async def window_floor(conn: Connection, schema: str, before: int | None) -> tuple[int, int]:
    """(lowest, highest) id a bounded look at WINDOW_IDS ids below `before` covers."""
    top = (
        before - 1
        if before is not None
        else int(await conn.fetchval(queries(schema)["console_max_id"]))
    )
    return max(top - WINDOW_IDS + 1, 1), top


async def job_page(
    conn: Connection, schema: str, selection: JobFilter, before: int | None, key: tuple[str, ...]
) -> Page:
    """Newest first after `before`. A filtered page reads at most WINDOW_IDS ids, so a
    filter no index serves (error text, row key, tenant) or one that matches little
    stays fast on millions of jobs: "older" goes on from where it stopped."""
    floor: int | None = None
    window = None
    if selection.active:
        floor, top = await window_floor(conn, schema, before)
        window = (floor, top)
    rows = await conn.fetch(
        queries(schema)["console_jobs"], *selection.params(key), before, PAGE_SIZE + 1, floor, None
    )
    jobs = [dict(row.items()) for row in rows[:PAGE_SIZE]]
    if len(rows) > PAGE_SIZE:
        return Page(jobs, jobs[-1]["id"], window and (jobs[-1]["id"], window[1]))
    return Page(jobs, floor if floor is not None and floor > 1 else None, window)


async def job_ids(
    conn: Connection,
    schema: str,
    selection: JobFilter,
    key: tuple[str, ...],
    states: Iterable[str],
    limit: int,
) -> list[int]:
    """The ids a bulk action would act on (in `states`), newest first, at most `limit`."""
    q = queries(schema)["console_jobs"]
    rows = await conn.fetch(q, *selection.params(key), None, limit, None, list(states))
    return [int(row["id"]) for row in rows]


def timeline(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(when, what) of a job's life, in order: inserted, scheduled, each error, the end."""
    events: list[tuple[str, str]] = [(str(job["inserted_at"].isoformat()), "inserted")]
    if job["scheduled_at"] and job["scheduled_at"] > job["inserted_at"]:
        events.append((job["scheduled_at"].isoformat(), "scheduled to run"))
    if job["attempted_at"]:
        who = job["attempted_by"] or "?"
        events.append(
            (job["attempted_at"].isoformat(), f"attempt {job['attempt']} started by {who}")
        )
    for entry in job["errors"] or []:
        kind = entry.get("kind", "error")
        attempt = entry.get("attempt")
        first = str(entry.get("error", "")).strip().splitlines()
        line = first[-1] if first else ""
        label = f"attempt {attempt} {kind}" if attempt else kind
        events.append((str(entry.get("at", "")), f"{label}: {line[:200]}"))
    for column, what in (
        ("completed_at", "completed"),
        ("discarded_at", "discarded"),
        ("cancelled_at", "cancelled"),
    ):
        if job.get(column):
            events.append((job[column].isoformat(), what))
    return sorted(events)


def next_runs(expression: str | None, timezone: str | None = None, n: int = 1) -> list[datetime]:
    if expression is None:
        return []
    it = cron_iter(expression, datetime.now(UTC), timezone)
    return [it.get_next() for _ in range(n)]


async def last_ticks(conn: Connection, schema: str, names: list[str]) -> dict[str, datetime]:
    rows = await conn.fetch(queries(schema)["console_last_ticks"], names)
    return {row["name"]: row["last_tick"] for row in rows}
