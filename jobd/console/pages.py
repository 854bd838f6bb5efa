"""The console's pages (GET): overview, jobs, a job, triggers and schedules, a trigger
(with its SQL), rows, and the sign-in page. Each reads through `data`/`rows` and
renders one template; none changes anything."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from jobd.admin.plumbing import DEPS_KEY, AdminDeps, ApiError
from jobd.console import data
from jobd.console.access import next_path, sessions_of
from jobd.console.filters import JobFilter, cursor, parse_pk
from jobd.console.render import page
from jobd.console.rows import check_row, explain_sql, row_jobs, table_of, trigger_conditions
from jobd.console.scans import last_scan
from jobd.engine import ops
from jobd.errors import did_you_mean
from jobd.model import Resource, Spec
from jobd.sql.values import positive_id

routes = web.RouteTableDef()


def deps(request: web.Request) -> AdminDeps:
    return request.config_dict[DEPS_KEY]


def spec_of(request: web.Request) -> Spec:
    spec = deps(request).spec
    if spec is None:
        raise ApiError(503, "triggers are not running on this node yet: reload in a moment")
    return spec


def resource_of(spec: Spec, name: str) -> Resource:
    if name not in spec.resources:
        raise ApiError(404, f"unknown resource {name!r}; {did_you_mean(name, spec.resources)}")
    return spec.resources[name]


def workers(spec: Spec | None) -> list[tuple[str, str]]:
    """(worker name, what it is) of every trigger, scheduler and schedule, for pickers."""
    if spec is None:
        return []
    found = []
    for resource in spec.resources.values():
        for t in resource.triggers.values():
            found += [(t.worker_name, "trigger"), (t.scheduler_name, "scheduler")]
        found += [(s.worker_name, "schedule") for s in resource.scheduled_actions.values()]
    return found


def key_columns(spec: Spec | None, worker: str | None) -> tuple[str, ...]:
    """The configured primary key of the worker's resource (for a bare `42` filter)."""
    if spec is None or worker is None:
        return ()
    for resource in spec.resources.values():
        if any(t.worker_name == worker for t in resource.triggers.values()):
            return resource.primary_key or ()
    return ()


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    sessions = sessions_of(request)
    return page(
        request,
        "login.html",
        title="Sign in",
        needs_token=sessions.token is not None,
        next=next_path(request.query.get("next")),
        failed=False,
    )


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    found = await data.overview(deps(request))
    return page(request, "overview.html", title="Overview", live=True, **found)


@routes.get("/jobs")
async def jobs(request: web.Request) -> web.Response:
    d = deps(request)
    selection = JobFilter.read(request.query)
    before = cursor(request.query.get("before"))
    key = key_columns(d.spec, selection.worker)
    async with d.pool.acquire() as conn:
        found = await data.job_page(conn, d.schema, selection, before, key)
    queues = sorted(data.configured_queues(d.spec))
    nxt = found.next_before
    return page(
        request,
        "jobs.html",
        title="Jobs",
        jobs=found.jobs,
        window=found.window,
        window_ids=data.WINDOW_IDS,
        selection=selection,
        next_query=None if nxt is None else selection.query(before=nxt),
        first_query=selection.query() if before else None,
        states=data.STATES,
        queues=queues,
        workers=workers(d.spec),
    )


@routes.get("/jobs/{id}")
async def job(request: web.Request) -> web.Response:
    d, text = deps(request), request.match_info["id"]
    job_id = positive_id(text)
    if job_id is None:
        raise ApiError(404, f"no job {text!r}")
    async with d.pool.acquire() as conn:
        found = await ops.get_job(conn, d.schema, job_id)
    if found is None:
        raise ApiError(404, f"no job {job_id}")
    meta = dict(found["meta"] or {})
    excerpts = {k: meta[k] for k in ("result", "response") if k in meta}
    return page(
        request,
        "job.html",
        title=f"Job {job_id}",
        job=found,
        excerpts=excerpts,
        timeline=data.timeline(found),
        can_retry=found["state"] not in ("available", "executing"),
        can_cancel=found["state"] in data.INCOMPLETE,
    )


@routes.get("/triggers")
async def triggers(request: web.Request) -> web.Response:
    d, spec = deps(request), spec_of(request)
    names = [t.scheduler_name for r in spec.resources.values() for t in r.triggers.values()]
    names += [s.worker_name for r in spec.resources.values() for s in r.scheduled_actions.values()]
    async with d.pool.acquire() as conn:
        found = await data.counts(conn, d.schema)
        ticks = await data.last_ticks(conn, d.schema, names)
        settings = await ops.queue_settings(conn, d.schema)
    return page(
        request,
        "triggers.html",
        title="Triggers and schedules",
        resources=list(spec.resources.values()),
        by_worker=found.by(1),
        ticks=ticks,
        paused={name for name, s in settings.items() if s["paused"]},
        next_runs=data.next_runs,
        last_scan=last_scan,
        window_minutes=int(data.WINDOW_S // 60),
    )


@routes.get("/triggers/{resource}/{trigger}")
async def trigger(request: web.Request) -> web.Response:
    d, spec = deps(request), spec_of(request)
    resource = resource_of(spec, request.match_info["resource"])
    name = request.match_info["trigger"]
    if name not in resource.triggers:
        hint = did_you_mean(name, resource.triggers)
        raise ApiError(404, f"resource {resource.name!r} has no trigger {name!r}; {hint}")
    found = resource.triggers[name]
    tenant = request.query.get("tenant") or None
    explain: str | None = None
    problem: str | None = None
    async with d.pool.acquire() as conn:
        try:
            table = await table_of(conn, resource, tenant)
            explain = explain_sql(resource, found, table, tenant, d.schema)
        except Exception as exc:  # a tenant is needed, or the table is not there
            problem = str(exc)
        counts = await data.counts(conn, d.schema)
        ticks = await data.last_ticks(conn, d.schema, [found.scheduler_name])
        setting = (await ops.queue_settings(conn, d.schema)).get(found.queue, {})
    return page(
        request,
        "trigger.html",
        title=f"Trigger {resource.name}.{name}",
        resource=resource,
        trigger=found,
        conditions=trigger_conditions(resource, found),
        explain=explain,
        problem=problem,
        tenant=tenant,
        states=counts.by(1).get(found.worker_name, {}),
        tick=ticks.get(found.scheduler_name),
        next_runs=data.next_runs(found.scheduler_cron, n=3),
        scan=last_scan(found.worker_name),
        paused=bool(setting.get("paused")),
        window_minutes=int(data.WINDOW_S // 60),
    )


@routes.get("/rows")
async def rows(request: web.Request) -> web.Response:
    d, spec = deps(request), spec_of(request)
    name, pk_text = request.query.get("resource") or "", request.query.get("pk") or ""
    tenant = request.query.get("tenant") or None
    before = cursor(request.query.get("before"))
    context: dict[str, Any] = {
        "title": "Rows",
        "resources": list(spec.resources),
        "chosen": name,
        "pk_text": pk_text,
        "tenant": tenant or "",
        "record": None,
        "checks": [],
        "jobs": [],
        "asked": bool(name and pk_text),
    }
    if context["asked"]:
        resource = resource_of(spec, name)
        async with d.pool.acquire() as conn:
            table = await table_of(conn, resource, tenant)
            pk = parse_pk(pk_text, table.primary_key)
            record, checks = await check_row(conn, resource, table, tenant, pk)
            if record is not None:  # the key as the database types it (as jobs store it)
                pk = {column: record[column] for column in table.primary_key}
            low, high = await data.window_floor(conn, d.schema, before)
            context.update(
                record=record,
                checks=checks,
                pk=pk,
                jobs=await row_jobs(
                    conn, d.schema, resource, pk, tenant, (low, high), list(table.primary_key)
                ),
                window=(low, high),
                window_ids=data.WINDOW_IDS,
                older=None if low <= 1 else urlencode({**request.query, "before": low}),
            )
    return page(request, "rows.html", **context)
