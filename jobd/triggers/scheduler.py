"""A trigger's scheduler: scan the rows that match, enqueue one worker job per row.

Set-based: each statement is one `INSERT ... SELECT` (`trigger_scan_enqueue`) that scans
and inserts; a row whose unique key a job holds gets no job (`ON CONFLICT DO NOTHING`,
which also settles races with concurrent inserters). With a `record_limit` such rows are
left out first (`NOT EXISTS`), so that the limit counts only new jobs. No row comes back
to Python: a statement returns its counts and, when paging, the last primary key it
scanned. Memory does not grow with the table.

Paging (see jobd.triggers.sqlgen for when): the first page has `stream_batch_size` rows,
so workers start soon; each later page is twice the last, up to `MAX_PAGE_FACTOR` times
the first. Each page is its own short transaction, after `trigger_scan_page_settings`,
which keeps its scan on an index even when the table's statistics are stale.

Per tenant (SPEC 1.7): `list_tenants` is resolved at every run. Attribute strategy: one
scan per tenant with `AND t.<attribute> = $tenant`; schema strategy: one scan of each
tenant's `"<tenant>"."<table>"`; `use_tenant_from_record`: one scan of all rows, each job
taking its tenant from the row. A tenant whose scan fails is logged
(`scheduler.tenant_failed`); the others still run, and the run then fails.

With `events:` and schema tenancy, each run first installs the trigger's database triggers
on the tables of tenants that do not have them yet (jobd.triggers.eventsync).

Each tenant's scan is logged as `scheduler.run` (trigger, tenant, scanned, enqueued,
pages, duration_ms).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from jobd.engine.context import JobContext
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.engine.jobs import Job
from jobd.engine.registry import Worker
from jobd.errors import JobdError
from jobd.model import Resource, Trigger
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.telemetry import emit
from jobd.triggers.deps import Deps
from jobd.triggers.eventsync import install_tenants
from jobd.triggers.jobs import TenantMode, key_prefix, tenant_mode, worker_job
from jobd.triggers.sqlgen import ScanSql, scan_sql
from jobd.triggers.tenants import list_tenants

log = structlog.get_logger("jobd.triggers")

MAX_PAGE_FACTOR = 16  # the largest keyset page, in first pages (stream_batch_size)


class SchedulerError(JobdError):
    """A scheduler run could not scan every tenant."""


@dataclass
class ScanResult:
    scanned: int = 0
    enqueued: int = 0
    pages: int = 0


def scan_params(
    statements: ScanSql,
    trigger: Trigger,
    *,
    schema: str,
    tenant: str | None,
    mode: TenantMode,
    stored_actor: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The parameters of a tenant's scan statements, $1 onwards, without the keyset
    position; $9 (the page's size) and $10 (the jobs still allowed) are set per page."""
    job = worker_job(trigger, stored_actor)
    params: list[Any] = [
        job.worker,
        job.queue,
        job.priority,
        job.max_attempts,
        job.uniq_hold,
        job.args,
        key_prefix(trigger, tenant, mode),
        tenant,
        None,
        trigger.record_limit,
        channel(schema, INSERT_CHANNEL),
        list(job.tags),
        *statements.pk_names,
    ]
    if statements.tenant_param:
        params.append(tenant)
    return params


async def scan_tenant(
    conn: Connection, statements: ScanSql, trigger: Trigger, params: list[Any], *, schema: str
) -> ScanResult:
    """Run one tenant's scan (all its pages) with `scan_params`; each page is its own
    short transaction."""
    result = ScanResult()
    remaining = trigger.record_limit
    fixed = list(params)
    settings = queries(schema)[
        "trigger_scan_page_settings" if statements.paged else "trigger_scan_settings"
    ]
    sizes = page_sizes(trigger.stream_batch_size)
    sql, position = statements.first, list[Any]()
    while True:
        size = next(sizes) if statements.paged else None
        fixed[8], fixed[9] = size, remaining
        async with conn.transaction():  # each page (or the one statement) on its own
            await conn.execute(settings)
            row = await conn.fetchrow(sql, *fixed, *position)
        assert row is not None  # the statement always returns its counts
        result.pages += 1
        result.scanned += row["scanned"]
        result.enqueued += row["enqueued"]
        if remaining is not None:
            remaining -= row["enqueued"]
        done = remaining is not None and remaining <= 0
        if size is None or done or row["scanned"] < size:
            return result
        sql, position = statements.next or sql, list(row["last"])


def page_sizes(first: int) -> Iterator[int]:
    """The sizes of a paged scan's pages: `first` (the trigger's `stream_batch_size`), so
    the first jobs are ready soon, then each page twice the last, up to `MAX_PAGE_FACTOR`
    times the first (few statements for a big scan, each transaction still short)."""
    size = first
    while True:
        yield size
        size = min(size * 2, first * MAX_PAGE_FACTOR)


async def move_jobs(conn: Connection, schema: str, queues: Mapping[str, str]) -> int:
    """Move the waiting jobs of each worker in `queues` to its queue there; how many."""
    rows = await conn.fetch(
        queries(schema)["trigger_move_jobs"],
        list(queues),
        list(queues.values()),
        channel(schema, INSERT_CHANNEL),
    )
    moved = sum(int(row["moved"]) for row in rows)
    if moved:
        log.info("trigger.jobs_moved", count=moved, queues=sorted(row["queue"] for row in rows))
    return moved


async def run_scheduler(
    deps: Deps,
    resource: Resource,
    trigger: Trigger,
    *,
    stored_actor: Mapping[str, Any] | None = None,
) -> ScanResult:
    """One scheduler run over every tenant; returns the totals."""
    mode = tenant_mode(resource, trigger)
    total = ScanResult()
    failed: list[str] = []
    async with deps.pool.acquire() as conn:
        # Jobs left in a queue this trigger no longer uses (by a node of an older
        # configuration during a rolling deploy) come back to its queue.
        await move_jobs(conn, deps.schema, {trigger.worker_name: trigger.queue})
        tenants: list[str | None]
        if mode in ("attribute", "schema"):
            tenants = list(
                await list_tenants(trigger.list_tenants, conn, identifiers=mode == "schema")
            )
            if trigger.events and mode == "schema":  # a new tenant's table gets its triggers
                await _install_tenants(deps, conn, resource, trigger, tenants)
        else:
            tenants = [None]
        for tenant in tenants:
            started = time.perf_counter()
            try:
                table, table_sql = await deps.tables.table_for(conn, resource, tenant)
                statements = scan_sql(resource, trigger, table, table_sql, deps.schema)
                params = scan_params(
                    statements,
                    trigger,
                    schema=deps.schema,
                    tenant=tenant,
                    mode=mode,
                    stored_actor=stored_actor,
                )
                result = await scan_tenant(conn, statements, trigger, params, schema=deps.schema)
            except Exception as exc:
                if tenant is None:
                    raise
                failed.append(tenant)
                log.error(
                    "scheduler.tenant_failed",
                    trigger=trigger.worker_name,
                    tenant=tenant,
                    error=f"{type(exc).__name__}: {exc}",
                )
                continue
            total.scanned += result.scanned
            total.enqueued += result.enqueued
            total.pages += result.pages
            emit(
                "scheduler.run",
                {
                    "scanned": result.scanned,
                    "enqueued": result.enqueued,
                    "pages": result.pages,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                {"trigger": trigger.worker_name, "resource": resource.name, "tenant": tenant},
            )
    if failed:
        raise SchedulerError(f"scheduler {trigger.scheduler_name}: tenants failed: {failed}")
    return total


async def _install_tenants(
    deps: Deps, conn: Connection, resource: Resource, trigger: Trigger, tenants: list[str | None]
) -> None:
    """The trigger's database triggers on its tenants' tables; a failure is logged, never
    the run's: the scan that follows is the safety net."""
    names = [t for t in tenants if t is not None]
    try:
        await install_tenants(conn, deps.schema, deps.tables, resource, trigger, names)
    except Exception as exc:
        log.error(
            "events.install_failed",
            trigger=trigger.worker_name,
            error=f"{type(exc).__name__}: {exc}",
        )


def scheduler_worker(deps: Deps, resource: Resource, trigger: Trigger) -> Worker:
    """The engine worker of a trigger's scheduler jobs (cron ticks and `schedule_trigger`)."""

    async def run(job: Job, ctx: JobContext) -> None:
        await run_scheduler(deps, resource, trigger, stored_actor=job.args.get("actor"))

    return run
