"""The admin listener: health probes, Prometheus metrics and a JSON API for operators.

    deps = AdminDeps(pool=pool, schema="jobd", spec=spec, engine=engine, runtime=rt)
    server = AdminServer("127.0.0.1:9187", token=None, deps=deps)
    await server.start(); ...; await server.stop()

Endpoints (docs/http-api.md): `GET /healthz`, `GET /readyz`, `GET /metrics` (open), and under
`/api/` (Bearer token): triggers and schedules run, jobs list/show/retry/cancel, queues
list/pause/resume/scale, status. Without a token the API is served on loopback listeners
only: `start()` refuses any other address. Every error is a JSON body
`{"error": ..., "hint": ...}` with a 4xx (or 503) status; never a traceback.

`AdminDeps` is mutable on purpose: on a reload the daemon swaps `engine`, `runtime` and
`spec` in place and the running server serves the new ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from jobd import ops
from jobd.admin_http import (
    MAX_BODY_KEY,
    ApiError,
    auth_middleware,
    body_field,
    did_you_mean,
    errors_middleware,
    is_loopback,
    json_response,
    parse_listen,
    read_body,
    reject_unknown,
)
from jobd.errors import JobdError
from jobd.metrics import CONTENT_TYPE, Metrics, default_metrics
from jobd.sql.migrate import pending_versions
from jobd.triggers import api as triggers_api

log = structlog.get_logger("jobd.admin")

MAX_BODY_BYTES = 1024 * 1024
READY_TIMEOUT_S = 2.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class AdminDeps:
    """What the admin app serves; swapped fields take effect on the next request."""

    pool: Any
    schema: str
    spec: Any = None  # jobd.model.Spec: resource names for validation, configured queues
    engine: Any = None  # `is_leader`, `running`; readiness asks whether it runs
    runtime: Any = None  # jobd.triggers.runtime.TriggerRuntime for run/schedule calls
    metrics: Metrics = field(default_factory=default_metrics)


DEPS_KEY = web.AppKey("deps", AdminDeps)


def _deps(request: web.Request) -> AdminDeps:
    return request.app[DEPS_KEY]


def _runtime(request: web.Request) -> Any:
    deps = _deps(request)
    if deps.runtime is None or deps.spec is None:
        raise ApiError(503, "triggers are not running on this node", "retry when /readyz is 200")
    return deps.runtime


def _resource(request: web.Request) -> Any:
    spec, name = _deps(request).spec, request.match_info["resource"]
    if name not in spec.resources:
        raise ApiError(404, f"unknown resource {name!r}", did_you_mean(name, spec.resources))
    return spec.resources[name]


def _job_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise ApiError(400, f"job id must be a positive integer, got {text!r}")
    return int(text)


# -- probes and metrics ----------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _engine_running(engine: Any) -> bool:
    if engine is None:
        return False
    explicit = getattr(engine, "is_running", None)
    if explicit is not None:
        return bool(explicit)
    stopped = getattr(engine, "_stopped", None)
    return bool(getattr(engine, "_started", False)) and not (stopped and stopped.is_set())


async def readyz(request: web.Request) -> web.Response:
    deps, reasons = _deps(request), []
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            async with deps.pool.acquire() as conn:
                if await pending_versions(conn, deps.schema):
                    reasons.append("database schema not migrated (run `jobd migrate`)")
    except Exception as exc:
        reasons.append(f"database unreachable: {type(exc).__name__}")
    if not _engine_running(deps.engine):
        reasons.append("engine not running")
    if reasons:
        return web.json_response({"status": "unready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    deps = _deps(request)
    leader = None if deps.engine is None else bool(deps.engine.is_leader)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), deps.pool.acquire() as conn:
            await deps.metrics.refresh(conn, deps.schema, is_leader=leader)
    except Exception as exc:  # serve the last values rather than nothing
        log.warning("admin.metrics_refresh_failed", error=repr(exc))
    return web.Response(body=deps.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


# -- API: triggers and schedules -------------------------------------------------------


async def run_trigger(request: web.Request) -> web.Response:
    rt, resource = _runtime(request), _resource(request)
    name = request.match_info["trigger"]
    if name not in resource.triggers:
        raise ApiError(404, f"resource {resource.name!r} has no trigger {name!r}",
                       did_you_mean(name, resource.triggers))  # fmt: skip
    body = await read_body(request)
    reject_unknown(body, {"primary_key", "primary_keys", "actor", "tenant"})
    key = body_field(body, "primary_key", dict, "an object of primary-key columns")
    keys = body_field(body, "primary_keys", list, "a list of primary-key objects")
    actor = body_field(body, "actor", dict, "an object")
    tenant = body_field(body, "tenant", str, "a string")
    if key is not None and keys is not None:
        raise ApiError(400, "give primary_key or primary_keys, not both")
    if keys is not None:
        if not all(isinstance(k, dict) for k in keys):
            raise ApiError(400, "every entry of primary_keys must be an object")
        ids = await triggers_api.run_triggers(rt, resource, name, keys, actor=actor, tenant=tenant)
        return json_response({"job_ids": ids})
    if key is not None:
        job_id = await triggers_api.run_trigger(rt, resource, name, key, actor=actor, tenant=tenant)
        return json_response({"job_id": job_id, "enqueued": job_id is not None})
    if tenant is not None:
        raise ApiError(400, "tenant needs primary_key(s): a scheduler run scans every tenant")
    job_id = await triggers_api.schedule_trigger(rt, resource, name, actor=actor)
    return json_response({"job_id": job_id, "enqueued": job_id is not None, "scheduled": True})


async def run_schedule(request: web.Request) -> web.Response:
    rt, resource = _runtime(request), _resource(request)
    name = request.match_info["name"]
    if name not in resource.scheduled_actions:
        raise ApiError(404, f"resource {resource.name!r} has no scheduled action {name!r}",
                       did_you_mean(name, resource.scheduled_actions))  # fmt: skip
    body = await read_body(request)
    reject_unknown(body, {"input", "actor", "tenant"})
    job_id = await triggers_api.run_schedule(
        rt, resource, name,
        input=body_field(body, "input", dict, "an object"),
        actor=body_field(body, "actor", dict, "an object"),
        tenant=body_field(body, "tenant", str, "a string"),
    )  # fmt: skip
    return json_response({"job_id": job_id})


# -- API: jobs, queues, status ---------------------------------------------------------


async def list_jobs(request: web.Request) -> web.Response:
    deps, params = _deps(request), request.query
    unknown = sorted(set(params) - {"state", "queue", "worker", "limit"})
    if unknown:
        raise ApiError(400, f"unknown query parameter(s) {unknown}",
                       "filters: state, queue, worker, limit")  # fmt: skip
    limit_text = params.get("limit", "50")
    if not limit_text.isdigit():
        raise ApiError(400, f"limit must be a positive integer, got {limit_text!r}")
    async with deps.pool.acquire() as conn:
        rows = await ops.list_jobs(
            conn, deps.schema, state=params.get("state"), queue=params.get("queue"),
            worker=params.get("worker"), limit=int(limit_text),
        )  # fmt: skip
    return json_response({"jobs": rows})


async def show_job(request: web.Request) -> web.Response:
    deps, job_id = _deps(request), _job_id(request)
    async with deps.pool.acquire() as conn:
        job = await ops.get_job(conn, deps.schema, job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    return json_response(job)


async def _job_action(request: web.Request, action: str) -> web.Response:
    deps, job_id = _deps(request), _job_id(request)
    fn = ops.retry_job if action == "retry" else ops.cancel_job
    async with deps.pool.acquire() as conn:
        done = await fn(conn, deps.schema, job_id)
        job = await ops.get_job(conn, deps.schema, job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id}")
    if not done:
        raise ApiError(409, f"job {job_id} is {job['state']}: cannot {action} it",
                       "retry: not available/executing; cancel: incomplete jobs only")  # fmt: skip
    return json_response({"id": job_id, "state": job["state"]})


async def retry_job(request: web.Request) -> web.Response:
    return await _job_action(request, "retry")


async def cancel_job(request: web.Request) -> web.Response:
    return await _job_action(request, "cancel")


def _configured_queues(deps: AdminDeps) -> dict[str, int]:
    if deps.spec is None:
        return {}
    return {name: q.limit for name, q in deps.spec.queues.items()}


async def list_queues(request: web.Request) -> web.Response:
    deps = _deps(request)
    async with deps.pool.acquire() as conn:
        rows = await ops.list_queues(conn, deps.schema, _configured_queues(deps))
    return json_response({"queues": rows})


async def control_queue(request: web.Request) -> web.Response:
    deps, name, action = _deps(request), request.match_info["name"], request.match_info["action"]
    body = await read_body(request)
    if action == "scale":
        reject_unknown(body, {"limit"})
        limit = body_field(body, "limit", int, "a positive integer (or null: the configured limit)")
        if limit is not None and limit < 1:
            raise ApiError(400, f"limit must be at least 1, got {limit}")
        await ops.scale_queue(deps.pool, deps.schema, name, limit)
    else:
        reject_unknown(body, set())
        pause = ops.pause_queue if action == "pause" else ops.resume_queue
        await pause(deps.pool, deps.schema, name)
    async with deps.pool.acquire() as conn:
        rows = await ops.list_queues(conn, deps.schema, _configured_queues(deps))
    return json_response(next(q for q in rows if q["name"] == name))


async def status(request: web.Request) -> web.Response:
    deps = _deps(request)
    async with deps.pool.acquire() as conn:
        result = await ops.status(conn, deps.schema)
    if deps.engine is not None:
        result["this_node"] = {
            "node_id": getattr(deps.engine, "node_id", None),
            "is_leader": bool(deps.engine.is_leader),
            "running": int(deps.engine.running),
        }
    return json_response(result)


# -- app and server --------------------------------------------------------------------


def build_app(
    deps: AdminDeps, *, token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes, middlewares=[errors_middleware, auth_middleware(token)]
    )
    app[DEPS_KEY] = deps
    app[MAX_BODY_KEY] = max_body_bytes
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/api/triggers/{resource}/{trigger}/run", run_trigger)
    app.router.add_post("/api/schedules/{resource}/{name}/run", run_schedule)
    app.router.add_get("/api/jobs", list_jobs)
    app.router.add_get("/api/jobs/{id}", show_job)
    app.router.add_post("/api/jobs/{id}/retry", retry_job)
    app.router.add_post("/api/jobs/{id}/cancel", cancel_job)
    app.router.add_get("/api/queues", list_queues)
    app.router.add_post("/api/queues/{name}/{action:pause|resume|scale}", control_queue)
    app.router.add_get("/api/status", status)
    return app


class AdminServer:
    """The admin listener on `listen` ("host:port"; port 0 = any free port, see `.port`)."""

    def __init__(
        self, listen: str, token: str | None, deps: AdminDeps, *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:  # fmt: skip
        self.host, self.port = parse_listen(listen)
        self.token = token or None
        self.deps = deps
        self.app = build_app(deps, token=self.token, max_body_bytes=max_body_bytes)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen; refuses a non-loopback address without a token (JobdError)."""
        if self.token is None and not is_loopback(self.host):
            raise JobdError(
                f"admin.listen {self.host}:{self.port} is not a loopback address and "
                "admin.token is not set: set admin.token "
                "(e.g. admin: {token: ${JOBD_ADMIN_TOKEN}}) or listen on 127.0.0.1"
            )
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise JobdError(f"admin listener cannot bind {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        log.info("admin.listening", host=self.host, port=self.port, token=self.token is not None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
