"""The admin API's handlers: health probes, Prometheus metrics and the JSON API for
operators (docs/http-api.md). Each reads what it needs from `AdminDeps` and answers JSON;
every failure becomes a JSON error in `jobd.admin.plumbing`'s middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from jobd.admin.metrics import CONTENT_TYPE
from jobd.admin.plumbing import (
    AdminDeps,
    ApiError,
    body_field,
    deps_of,
    json_response,
    path_text,
    query_text,
    read_body,
    reject_unknown,
)
from jobd.engine import ops
from jobd.errors import did_you_mean
from jobd.model import Resource, Spec
from jobd.sql.migrate import pending_versions
from jobd.sql.values import positive_id, positive_id_problem
from jobd.triggers.api import Enqueuer
from jobd.triggers.tables import require_tenant

log = structlog.get_logger("jobd.admin")

READY_TIMEOUT_S = 2.0
routes = web.RouteTableDef()  # every endpoint, declared beside its handler


def _spec(request: web.Request) -> Spec:
    spec = deps_of(request).spec
    if spec is None:
        raise ApiError(503, "triggers are not running on this node", "retry when /readyz is 200")
    return spec


def _enqueuer(request: web.Request) -> Enqueuer:
    deps = deps_of(request)
    return Enqueuer(_spec(request), deps.pool, deps.schema)


def _resource(request: web.Request) -> Resource:
    spec, name = _spec(request), request.match_info["resource"]
    if name not in spec.resources:
        raise ApiError(404, f"unknown resource {name!r}", did_you_mean(name, spec.resources))
    return spec.resources[name]


def _named(request: web.Request, key: str, kind: str, known: Mapping[str, object]) -> str:
    """The path's `key`, which must name one of the resource's `known` triggers or
    scheduled actions (404 with did-you-mean)."""
    name, resource = request.match_info[key], request.match_info["resource"]
    if name not in known:
        message = f"resource {resource!r} has no {kind} {name!r}"
        raise ApiError(404, message, did_you_mean(name, known))
    return name


def _positive(text: str, what: str) -> int:
    number = positive_id(text)
    if number is None:
        raise ApiError(400, f"{what} {positive_id_problem(text)}")
    return number


def _job_id(request: web.Request) -> int:
    return _positive(request.match_info["id"], "job id")


# -- probes and metrics ----------------------------------------------------------------


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    deps, reasons = deps_of(request), []
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with deps.pool.acquire() as conn:
                if await pending_versions(conn, deps.schema):
                    reasons.append("database schema not migrated (run `jobd migrate`)")
    except Exception as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    if deps.engine is None or not deps.engine.is_running:
        reasons.append("engine not running")
    if reasons:
        return web.json_response({"status": "unready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    deps = deps_of(request)
    leader = None if deps.engine is None else bool(deps.engine.is_leader)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), deps.pool.acquire() as conn:
            await deps.metrics.refresh(conn, deps.schema, is_leader=leader)
    except Exception as exc:  # serve the last values rather than nothing
        log.warning("admin.metrics_refresh_failed", error=repr(exc))
    return web.Response(body=deps.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


# -- API: triggers and schedules -------------------------------------------------------

# The options of a row's job and of a scheduled action's run (jobd.common.enqueue_options
# checks their values, through the client: a mistake is a UsageError, 400).
OPTION_FIELDS = {"input", "schedule_in", "scheduled_at", "priority"}


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The enqueue options of a request body, type-checked (400 names the field)."""
    return {
        "input": body_field(body, "input", dict, "an object"),
        "schedule_in": body_field(
            body, "schedule_in", (str, int, float), 'a duration ("10m", "2h", "30s") or seconds'
        ),
        "scheduled_at": body_field(
            body, "scheduled_at", str, 'an ISO 8601 timestamp with a timezone ("...Z")'
        ),
        "priority": body_field(body, "priority", int, "an integer from 0 to 9"),
    }


@routes.post("/api/triggers/{resource}/{trigger}/run")
async def run_trigger(request: web.Request) -> web.Response:
    jobs, resource = _enqueuer(request), _resource(request)
    name = _named(request, "trigger", "trigger", resource.triggers)
    body = await read_body(request)
    reject_unknown(body, {"primary_key", "primary_keys", "actor", "tenant", *OPTION_FIELDS})
    key = body_field(body, "primary_key", dict, "an object of primary-key columns")
    keys = body_field(body, "primary_keys", list, "a list of primary-key objects")
    actor = body_field(body, "actor", dict, "an object")
    tenant = body_field(body, "tenant", str, "a string")
    options = _options(body)
    if key is not None and keys is not None:
        raise ApiError(400, "give primary_key or primary_keys, not both")
    if (key, keys) != (None, None):
        require_tenant(resource, tenant)
    if keys is not None:
        if not all(isinstance(k, dict) for k in keys):
            raise ApiError(400, "every entry of primary_keys must be an object")
        ids = await jobs.run_triggers(
            resource.name, name, keys, actor=actor, tenant=tenant, **options
        )
        return json_response({"job_ids": ids})
    if key is not None:
        job_id = await jobs.run_trigger(
            resource.name, name, key, actor=actor, tenant=tenant, **options
        )
        return json_response({"job_id": job_id, "enqueued": job_id is not None})
    if tenant is not None:
        raise ApiError(400, "tenant needs primary_key(s): a scheduler run scans every tenant")
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        raise ApiError(
            400,
            f"{given} need primary_key(s): they are options of each row's job",
            "a scheduler run (no primary key) takes none of them",
        )
    job_id = await jobs.schedule_trigger(resource.name, name, actor=actor)
    return json_response({"job_id": job_id, "enqueued": job_id is not None, "scheduled": True})


@routes.post("/api/schedules/{resource}/{name}/run")
async def run_schedule(request: web.Request) -> web.Response:
    jobs, resource = _enqueuer(request), _resource(request)
    name = _named(request, "name", "scheduled action", resource.scheduled_actions)
    body = await read_body(request)
    reject_unknown(body, {"actor", "tenant", *OPTION_FIELDS})
    job_id = await jobs.schedule(
        resource.name,
        name,
        actor=body_field(body, "actor", dict, "an object"),
        tenant=body_field(body, "tenant", str, "a string"),
        **_options(body),
    )
    return json_response({"job_id": job_id})


# -- API: jobs, queues, status ---------------------------------------------------------


@routes.get("/api/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    deps, params = deps_of(request), request.query
    unknown = sorted(set(params) - {"state", "queue", "worker", "limit"})
    if unknown:
        raise ApiError(
            400, f"unknown query parameter(s) {unknown}", "filters: state, queue, worker, limit"
        )
    limit = _positive(params.get("limit", "50"), "limit")
    filters = {name: query_text(request, name) for name in ("state", "queue", "worker")}
    async with deps.pool.acquire() as conn:
        rows = await ops.list_jobs(conn, deps.schema, **filters, limit=limit)
    return json_response({"jobs": rows})


@routes.get("/api/jobs/{id}")
async def show_job(request: web.Request) -> web.Response:
    deps, job_id = deps_of(request), _job_id(request)
    async with deps.pool.acquire() as conn:
        job = await ops.get_job(conn, deps.schema, job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return json_response(job)


async def _job_action(request: web.Request, action: str) -> web.Response:
    deps, job_id = deps_of(request), _job_id(request)
    fn = ops.retry_job if action == "retry" else ops.cancel_job
    async with deps.pool.acquire() as conn:
        if await fn(conn, deps.schema, job_id):
            # The state the action set, not a read-back: a daemon may run the job at once.
            state = "available" if action == "retry" else "cancelled"
            return json_response({"id": job_id, "state": state})
        job = await ops.get_job(conn, deps.schema, job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    raise ApiError(
        409,
        f"job {job_id} is {job['state']}: cannot {action} it",
        "retry: not available/executing; cancel: incomplete jobs only",
    )


@routes.post("/api/jobs/{id}/retry")
async def retry_job(request: web.Request) -> web.Response:
    return await _job_action(request, "retry")


@routes.post("/api/jobs/{id}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    return await _job_action(request, "cancel")


def _configured_queues(deps: AdminDeps) -> dict[str, int]:
    if deps.spec is None:
        return {}
    return {name: q.limit for name, q in deps.spec.queues.items()}


async def _queue_row(deps: AdminDeps, name: str) -> web.Response:
    async with deps.pool.acquire() as conn:
        rows = await ops.list_queues(conn, deps.schema, _configured_queues(deps))
    return json_response(next(q for q in rows if q["name"] == name))


@routes.get("/api/queues")
async def list_queues(request: web.Request) -> web.Response:
    deps = deps_of(request)
    async with deps.pool.acquire() as conn:
        rows = await ops.list_queues(conn, deps.schema, _configured_queues(deps))
    return json_response({"queues": rows})


@routes.post("/api/queues/{name}/{action:pause|resume|scale}")
async def control_queue(request: web.Request) -> web.Response:
    """Pause, resume or scale a queue the configuration names or the database knows;
    `{"create": true}` makes a new one; a limit the daemons' pool cannot hold is refused."""
    deps, name, action = deps_of(request), path_text(request, "name"), request.match_info["action"]
    body = await read_body(request)
    reject_unknown(body, {"limit", "create"} if action == "scale" else {"create"})
    create = bool(body_field(body, "create", bool, "true or false"))
    configured = _configured_queues(deps)
    if action == "scale":
        limit = body_field(body, "limit", int, "a positive integer (or null: the configured limit)")
        if limit is not None and limit < 1:
            raise ApiError(400, f"limit must be at least 1, got {limit}")
        await ops.scale_queue(
            deps.pool,
            deps.schema,
            name,
            limit,
            configured=configured,
            capacity=deps.capacity,
            create=create,
        )
    else:
        pause = ops.pause_queue if action == "pause" else ops.resume_queue
        await pause(deps.pool, deps.schema, name, configured=configured, create=create)
    return await _queue_row(deps, name)


@routes.delete("/api/queues/{name}")
async def remove_queue(request: web.Request) -> web.Response:
    """Forget a queue no configuration names and no unfinished job uses."""
    deps, name = deps_of(request), path_text(request, "name")
    await ops.remove_queue(deps.pool, deps.schema, name, configured=_configured_queues(deps))
    return json_response({"name": name, "removed": True})


@routes.get("/api/status")
async def status(request: web.Request) -> web.Response:
    deps = deps_of(request)
    async with deps.pool.acquire() as conn:
        result = await ops.status(conn, deps.schema)
    if deps.engine is not None:
        result["this_node"] = {
            "node_id": deps.engine.node_id,
            "is_leader": bool(deps.engine.is_leader),
            "running": int(deps.engine.running),
        }
    return json_response(result)
