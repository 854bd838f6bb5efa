"""The console's actions (POST, each behind the access middleware's CSRF and origin
checks): sign in and out, retry and cancel a job, bulk retry or cancel what a filter
selects (a count and a confirmation first), pause, resume and scale a queue, run a
trigger's scheduler or a schedule now, pause and resume a trigger (its queue).

Every change goes through the functions the JSON API calls (jobd.engine.ops,
jobd.triggers.api.Enqueuer); each answers with a redirect and a message (post, redirect,
get), so reloading a page never repeats an action.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from jobd.admin.plumbing import ApiError
from jobd.console import data
from jobd.console.access import (
    clear_cookie,
    next_path,
    session_of,
    sessions_of,
    set_cookie,
)
from jobd.console.filters import JobFilter
from jobd.console.pages import deps, key_columns, resource_of, spec_of
from jobd.console.render import page
from jobd.engine import ops
from jobd.errors import UsageError
from jobd.sql.values import positive_id
from jobd.triggers.api import Enqueuer

log = structlog.get_logger("jobd.console")
routes = web.RouteTableDef()

MAX_BULK = 1000  # jobs one bulk action changes
FAILED_SIGN_IN_DELAY_S = 0.5
BULK_STATES = {
    "retry": ("scheduled", "retryable", "completed", "discarded", "cancelled"),
    "cancel": data.INCOMPLETE,
}


def done(request: web.Request, message: str, to: str) -> web.HTTPSeeOther:
    """Back to `to` (a console path) with `message` shown there (and in the log: what
    an operator did from the console is on record)."""
    log.info("console.action", path=request.path, result=message, remote=request.remote)
    session_of(request).flash.append(message)
    return web.HTTPSeeOther(next_path(to))


async def form(request: web.Request) -> dict[str, Any]:
    return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    sessions, fields = sessions_of(request), await form(request)
    if not sessions.token_matches(fields.get("token", "")):
        log.warning("console.sign_in_refused", remote=request.remote)
        await asyncio.sleep(FAILED_SIGN_IN_DELAY_S)  # guessing costs time
        return page(
            request,
            "login.html",
            401,
            title="Sign in",
            needs_token=True,
            next=next_path(fields.get("next")),
            failed=True,
        )
    session = sessions.new()
    log.info("console.signed_in", remote=request.remote)
    response = web.HTTPSeeOther(next_path(fields.get("next")))
    set_cookie(request, response, session)
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    sessions_of(request).end(session_of(request))
    response = web.HTTPSeeOther("/console/login" if sessions_of(request).token else "/console/")
    clear_cookie(response)
    raise response


@routes.post("/jobs/{id}/{action:retry|cancel}")
async def job_action(request: web.Request) -> web.StreamResponse:
    d, action = deps(request), request.match_info["action"]
    job_id = positive_id(request.match_info["id"])
    if job_id is None:
        raise ApiError(404, f"no job {request.match_info['id']!r}")
    fn = ops.retry_job if action == "retry" else ops.cancel_job
    async with d.pool.acquire() as conn:
        changed = await fn(conn, d.schema, job_id)
        job = None if changed else await ops.get_job(conn, d.schema, job_id)
    if not changed:
        if job is None:
            raise ApiError(404, f"no job {job_id}")
        message = (
            f"job {job_id} is {job['state']}: not {'retried' if action == 'retry' else 'cancelled'}"
        )
    else:
        message = f"job {job_id} {'retried: available now' if action == 'retry' else 'cancelled'}"
    raise done(request, message, f"/console/jobs/{job_id}")


@routes.post("/jobs/bulk")
async def bulk(request: web.Request) -> web.StreamResponse:
    """First post: how many jobs the filter selects for the action, and a confirmation
    form; the confirmed post acts on them (at most MAX_BULK, newest first)."""
    d, fields = deps(request), await form(request)
    action = fields.get("action")
    if action not in BULK_STATES:
        raise UsageError("bulk action: retry or cancel")
    selection = JobFilter.read(fields)
    if not selection.active:
        raise UsageError("a bulk action needs a filter: choose a state, queue, worker ...")
    key = key_columns(d.spec, selection.worker)
    states = BULK_STATES[action]
    async with d.pool.acquire() as conn:
        ids = await data.job_ids(conn, d.schema, selection, key, states, MAX_BULK + 1)
        if fields.get("confirm") != "yes":
            return page(
                request,
                "confirm.html",
                title=f"Bulk {action}",
                action=action,
                selection=selection,
                count=min(len(ids), MAX_BULK),
                more=len(ids) > MAX_BULK,
                states=states,
                fields=[(k, v) for k, v in vars(selection).items() if v is not None],
            )
        fn = ops.retry_job if action == "retry" else ops.cancel_job
        changed = failed = 0
        for job_id in ids[:MAX_BULK]:
            try:
                changed += bool(await fn(conn, d.schema, job_id))
            except UsageError:  # retry: another job holds the row's key now
                failed += 1
    verb = "retried" if action == "retry" else "cancelled"
    note = f" ({failed} not: their rows have another job now)" if failed else ""
    raise done(request, f"{changed} job(s) {verb}{note}", "/console/jobs?" + selection.query())


@routes.post("/queues/{name}/{action:pause|resume|scale}")
async def queue_action(request: web.Request) -> web.StreamResponse:
    d, fields = deps(request), await form(request)
    name, action = request.match_info["name"], request.match_info["action"]
    configured = data.configured_queues(d.spec)
    if action == "scale":
        text = fields.get("limit", "").strip()
        limit = positive_id(text) if text else None
        if text and limit is None:
            raise UsageError(f"limit: a positive integer (empty: the configured one), got {text!r}")
        await ops.scale_queue(
            d.pool, d.schema, name, limit, configured=configured, capacity=d.capacity
        )
        message = f"queue {name}: limit {limit if limit else 'back to the configured one'}"
    else:
        fn = ops.pause_queue if action == "pause" else ops.resume_queue
        await fn(d.pool, d.schema, name, configured=configured)
        message = f"queue {name} {'paused' if action == 'pause' else 'resumed'}"
    raise done(request, message, fields.get("back") or "/console/")


@routes.post("/{kind:triggers|schedules}/{resource}/{name}/{action:run|pause|resume}")
async def trigger_action(request: web.Request) -> web.StreamResponse:
    """Run a trigger's scheduler or a scheduled action now, or pause/resume its queue."""
    d, spec, fields = deps(request), spec_of(request), await form(request)
    resource = resource_of(spec, request.match_info["resource"])
    kind, name, action = (request.match_info[k] for k in ("kind", "name", "action"))
    known = resource.triggers if kind == "triggers" else resource.scheduled_actions
    found = known.get(name)
    if found is None:
        what = "trigger" if kind == "triggers" else "scheduled action"
        raise ApiError(404, f"resource {resource.name!r} has no {what} {name!r}")
    label = f"{resource.name}.{name}"
    if action == "run":
        jobs = Enqueuer(spec, d.pool, d.schema)
        if kind == "triggers":
            job_id = await jobs.schedule_trigger(resource.name, name)
            message = f"{label}: scheduler job {job_id} enqueued"
            if job_id is None:
                message = f"{label}: its scheduler already has a pending run"
        else:
            message = f"{label}: job {await jobs.schedule(resource.name, name)} enqueued"
    else:
        fn = ops.pause_queue if action == "pause" else ops.resume_queue
        await fn(d.pool, d.schema, found.queue, configured=data.configured_queues(spec))
        verb = "paused" if action == "pause" else "resumed"
        message = f"{label}: its queue {found.queue} {verb}"
    raise done(request, message, fields.get("back") or "/console/triggers")
