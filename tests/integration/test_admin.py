"""The admin listener over real HTTP on loopback, against a real database: probes,
/metrics, the JSON API with and without a token, and clear 4xx answers to bad requests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobd.admin.metrics import Metrics
from jobd.admin.server import AdminDeps, AdminServer
from jobd.config import load_config_text
from jobd.engine.registry import WorkerRegistry
from jobd.errors import JobdError
from jobd.sql.db import create_pool
from jobd.triggers.runtime import TriggerRuntime

CONFIG = """
version: 1
database: {url: "postgresql://unused"}
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process: {action: work, scheduler_cron: false}
    scheduled_actions:
      nightly: {action: work, cron: "@daily"}
queues: {default: 5}
"""
TOKEN = "s3cret-token"


@dataclass
class StubEngine:
    """The engine attributes the admin app reads (a running engine's public view)."""

    is_leader: bool = True
    running: int = 0
    is_running: bool = True
    node_id: str = "node-1"


@dataclass
class Admin:
    url: str
    deps: AdminDeps
    headers: dict[str, str]


async def _start(database_url: str, token: str | None) -> AsyncIterator[Admin]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
    await pool.execute("INSERT INTO orders VALUES (1, 'new'), (2, 'new')")
    spec = load_config_text(CONFIG, "t.yaml", env={})
    async with pool.acquire() as conn:
        await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)  # writes the registry
    deps = AdminDeps(pool=pool, schema="jobd", spec=spec, engine=StubEngine(), metrics=Metrics())
    server = AdminServer("127.0.0.1:0", token, deps, max_body_bytes=4096)
    await server.start()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        yield Admin(server.url, deps, headers)
    finally:
        await server.stop()
        await pool.close()


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[Admin]:
    """An admin server with a token on 127.0.0.1 (any port)."""
    async for a in _start(database_url, TOKEN):
        yield a


@pytest.fixture
async def open_admin(database_url: str) -> AsyncIterator[Admin]:
    """An admin server without a token (loopback only)."""
    async for a in _start(database_url, None):
        yield a


async def call(a: Admin, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    headers = {**a.headers, **kw.pop("headers", {})}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, a.url + path, headers=headers, **kw) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body


async def test_probes(admin: Admin) -> None:
    """healthz always 200 (no token needed); readyz 200 when migrated and the engine runs,
    503 with reasons when the engine stops."""
    assert await call(admin, "GET", "/healthz", headers={"Authorization": ""}) == (
        200,
        {"status": "ok"},
    )
    assert await call(admin, "GET", "/readyz") == (200, {"status": "ready"})
    admin.deps.engine = None
    status, body = await call(admin, "GET", "/readyz")
    assert status == 503 and body["reasons"] == ["engine not running"]


async def test_metrics_parse_and_count_events(admin: Admin) -> None:
    """/metrics is valid Prometheus text with the process metrics (CPU, memory, open fds)
    and jobd_nodes; telemetry events handed to the metrics and queue
    depths read on scrape show up."""
    handle = admin.deps.metrics.handle
    handle("job.complete", {"duration_ms": 12.0}, {"queue": "default", "worker": "w"})
    handle("scheduler.run", {"scanned": 5, "enqueued": 3}, {"trigger": "t"})
    handle("action.http", {}, {"action": "notify", "status": 503})
    status, body = await call(
        admin, "POST", "/api/triggers/orders/process/run", json={"primary_key": {"id": 1}}
    )
    assert status == 200, body
    status, text = await call(admin, "GET", "/metrics", headers={"Authorization": ""})
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert (
        samples[
            ("jobd_jobs_total", (("outcome", "completed"), ("queue", "default"), ("worker", "w")))
        ]
        == 1
    )
    assert samples[("jobd_scheduler_rows_scanned_total", (("trigger", "t"),))] == 5
    assert (
        samples[("jobd_http_action_responses_total", (("action", "notify"), ("status", "503")))]
        == 1
    )
    depth = {k[1]: v for k, v in samples.items() if k[0] == "jobd_queue_depth" and v}
    assert depth, samples
    assert samples[("jobd_leader", ())] == 1
    assert (
        samples[("jobd_job_execution_seconds_count", (("queue", "default"), ("worker", "w")))] == 1
    )
    # The process's own resources, read at the scrape (Linux: /proc).
    assert samples[("process_open_fds", ())] > 0
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in samples
    assert ("jobd_nodes", ()) in samples


async def test_api_requires_the_token(admin: Admin) -> None:
    """Without or with a wrong bearer token the API answers 401 with a hint."""
    status, body = await call(admin, "GET", "/api/status", headers={"Authorization": ""})
    assert status == 401 and "Bearer" in body["hint"]
    status, _ = await call(admin, "GET", "/api/jobs", headers={"Authorization": "Bearer nope"})
    assert status == 401


async def test_run_trigger_jobs_and_queues(admin: Admin) -> None:
    """Run a trigger for one and several rows, schedule it, run a schedule; list, show,
    cancel and retry the job; pause, scale and resume a queue; status."""
    status, body = await call(
        admin,
        "POST",
        "/api/triggers/orders/process/run",
        json={"primary_key": {"id": 1}, "actor": {"id": 7}},
    )
    assert status == 200 and body["enqueued"]
    job_id = body["job_id"]
    status, body = await call(
        admin,
        "POST",
        "/api/triggers/orders/process/run",
        json={"primary_keys": [{"id": 1}, {"id": 2}]},
    )
    assert status == 200 and len(body["job_ids"]) == 1  # row 1 already has a job
    status, body = await call(admin, "POST", "/api/triggers/orders/process/run")
    assert status == 200 and body["scheduled"]
    status, body = await call(
        admin, "POST", "/api/schedules/orders/nightly/run", json={"input": {"period": "week"}}
    )
    assert status == 200 and body["job_id"] > 0
    status, body = await call(admin, "GET", "/api/jobs?worker=orders.process&limit=10")
    assert status == 200 and len(body["jobs"]) == 2
    status, job = await call(admin, "GET", f"/api/jobs/{job_id}")
    assert status == 200 and job["args"]["pk"] == {"id": 1}
    assert await call(admin, "POST", f"/api/jobs/{job_id}/cancel") == (
        200,
        {"id": job_id, "state": "cancelled"},
    )
    status, body = await call(admin, "POST", f"/api/jobs/{job_id}/cancel")
    assert status == 409 and "cancelled" in body["error"]
    assert await call(admin, "POST", f"/api/jobs/{job_id}/retry") == (
        200,
        {"id": job_id, "state": "available"},
    )
    status, body = await call(admin, "POST", "/api/queues/default/pause")
    assert status == 200 and body["paused"] is True
    status, body = await call(admin, "POST", "/api/queues/default/scale", json={"limit": 3})
    assert status == 200 and body["limit"] == 3
    status, body = await call(admin, "POST", "/api/queues/default/resume")
    assert status == 200 and body["paused"] is False
    status, body = await call(admin, "GET", "/api/queues")
    assert status == 200 and body["queues"][0]["name"] == "default"
    status, body = await call(admin, "GET", "/api/status")
    assert status == 200 and body["this_node"]["is_leader"] is True
    assert sum(d.get("available", 0) for d in body["queues"].values()) >= 2


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"),
    [
        ("POST", "/api/triggers/order/process/run", {}, 404, "did you mean 'orders'"),
        ("POST", "/api/triggers/orders/proces/run", {}, 404, "did you mean 'process'"),
        ("POST", "/api/triggers/orders/process/run", {"data": b"{nope"}, 400, "not valid JSON"),
        ("POST", "/api/triggers/orders/process/run", {"json": [1]}, 400, "JSON object"),
        (
            "POST",
            "/api/triggers/orders/process/run",
            {"json": {"primary_key": 5}},
            400,
            "'primary_key' must be",
        ),
        ("POST", "/api/triggers/orders/process/run", {"json": {"pk": {}}}, 400, "unknown field"),
        (
            "POST",
            "/api/triggers/orders/process/run",
            {"json": {"primary_key": {"id": 99}}},
            404,
            "no row",
        ),
        (
            "POST",
            "/api/triggers/orders/process/run",
            {"json": {"primary_key": {"x": 1}}},
            400,
            "primary key must name",
        ),
        (
            "POST",
            "/api/triggers/orders/process/run",
            {"data": b"{" + b" " * 5000 + b"}"},
            413,
            "too large",
        ),
        ("POST", "/api/schedules/orders/nigthly/run", {}, 404, "did you mean 'nightly'"),
        ("POST", "/api/queues/default/scale", {"json": {"limit": 0}}, 400, "at least 1"),
        ("POST", "/api/queues/default/scale", {"json": {"limit": "3"}}, 400, "must be"),
        ("GET", "/api/jobs?state=done", {}, 400, "unknown job state"),
        ("GET", "/api/jobs?limit=x", {}, 400, "limit"),
        ("GET", "/api/jobs/abc", {}, 400, "positive integer"),
        ("GET", "/api/jobs/123456", {}, 404, "no job"),
        ("GET", "/api/nothing", {}, 404, "Not Found"),
    ],
)
async def test_bad_requests_get_clear_json_errors(
    admin: Admin, method: str, path: str, kwargs: dict[str, Any], status: int, needle: str
) -> None:
    """Each bad request gets its 4xx status and a JSON error naming the problem."""
    got, body = await call(admin, method, path, **kwargs)
    assert got == status, body
    assert needle in body["error"] + body.get("hint", "")


async def test_no_token_api_works_on_loopback(open_admin: Admin) -> None:
    """Without a configured token the API answers on a loopback listener."""
    status, body = await call(open_admin, "GET", "/api/queues")
    assert status == 200 and "queues" in body


async def test_refuses_non_loopback_without_token(database_url: str) -> None:
    """start() on a non-loopback address without a token fails, saying to set admin.token;
    with a token it listens."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        server = AdminServer("0.0.0.0:0", None, AdminDeps(pool=pool, schema="jobd"))
        with pytest.raises(JobdError, match=r"set admin\.token"):
            await server.start()
        guarded = AdminServer("0.0.0.0:0", TOKEN, AdminDeps(pool=pool, schema="jobd"))
        await guarded.start()
        await guarded.stop()
    finally:
        await pool.close()
