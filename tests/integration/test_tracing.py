"""OpenTelemetry traces (`otel`), read with the SDK's in-memory exporter: the daemon's own
generation (engine, trigger runtime, HTTP client) runs in the test's event loop against
real Postgres and a loopback webhook receiver, with jobd.daemon.tracing installed as
`jobd run` installs it, only with the in-memory exporter instead of OTLP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from jobd.daemon.tracing import Tracing
from jobd.model import Otel
from jobd.telemetry import trace_headers
from tests.faults.inprocess import http_sink, running

CONFIG = """
version: 1
database: {{url: "{url}"}}
engine: {{poll_interval: 200ms, heartbeat: 1s}}
queues: {{work: 4}}
resources:
  orders:
    table: public.orders
    actions:
      hook: {{http: {{url: "{sink}/orders/{{record.id}}"}}}}
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process:
        action: hook
        where: "status = 'new'"
        scheduler_cron: "* * * * * *"
        on_success: done
        queue: work
        max_attempts: 2
        backoff: {{fixed: 1s}}
"""


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    tracing = Tracing.install(Otel(enabled=True), exporter=memory)
    try:
        yield memory
    finally:
        tracing.shutdown()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_spans_for_attempts_and_scheduler_runs_with_traceparent(
    database_url: str, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """Each job attempt is a span `job <worker>` with the log events' keys as `jobd.*`
    attributes (ok when it completed, error with a `job.fail` event when it failed); each
    scheduler scan is a span `scheduler <trigger>` under its scheduler job's span; every
    webhook request carries a W3C traceparent naming its own attempt's span; with tracing
    shut down, nothing is added to requests any more."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "CREATE TABLE public.orders (id int PRIMARY KEY, status text NOT NULL DEFAULT 'new');"
        "INSERT INTO public.orders (id) VALUES (1), (2);"
    )
    requests: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.StreamResponse:
        envelope = json.loads(await request.read())
        requests.append({"headers": dict(request.headers), "job": envelope["job"]})
        failing = request.path.endswith("/2") and envelope["job"]["attempt"] == 1
        return web.json_response({}, status=500 if failing else 200)

    async with http_sink(receive) as sink:
        config = CONFIG.format(url=database_url, sink=sink)
        async with running(config, database_url, tmp_path / "log.jsonl"):
            for _ in range(300):
                done = await conn.fetchval("SELECT count(*) FROM orders WHERE status = 'done'")
                if done == 2:
                    break
                await asyncio.sleep(0.1)
            assert done == 2
    await conn.close()

    spans = exporter.get_finished_spans()
    workers = [s for s in spans if s.name == "job orders.process"]
    by_attempt = {(attrs(s)["jobd.job_id"], attrs(s)["jobd.attempt"]): s for s in workers}
    assert len(by_attempt) == 3  # order 1 once, order 2 twice
    for span in workers:
        a = attrs(span)
        assert span.kind == SpanKind.CONSUMER and span.parent is None
        assert a["jobd.queue"] == "work" and a["jobd.worker"] == "orders.process"
        assert a["messaging.system"] == "jobd" and "jobd.queue_wait_ms" in a
    failed = [s for s in workers if s.status.status_code == StatusCode.ERROR]
    (fail,) = failed
    assert attrs(fail)["jobd.attempt"] == 1 and attrs(fail)["jobd.outcome"] == "retried"
    assert [e.name for e in fail.events] == ["job.fail"]
    assert "500" in str(attrs(fail)["jobd.error"])
    ok = [s for s in workers if s.status.status_code == StatusCode.OK]
    assert len(ok) == 2 and all(attrs(s)["jobd.outcome"] == "completed" for s in ok)
    assert all("jobd.duration_ms" in attrs(s) for s in ok)

    scans = [s for s in spans if s.name == "scheduler orders.process"]
    assert scans, [s.name for s in spans]
    parents = {s.context.span_id: s for s in spans if s.name == "job orders.process.scheduler"}
    for scan in scans:
        a = attrs(scan)
        assert {"jobd.scanned", "jobd.enqueued", "jobd.pages", "jobd.duration_ms"} <= a.keys()
        assert a["jobd.trigger"] == "orders.process" and a["jobd.resource"] == "orders"
        assert scan.parent is not None and scan.parent.span_id in parents
        assert scan.start_time is not None and scan.end_time is not None
        assert scan.start_time <= scan.end_time
    assert sum(attrs(s)["jobd.enqueued"] for s in scans) == 2

    assert len(requests) == 3
    for request in requests:
        version, trace_id, span_id, flags = request["headers"]["traceparent"].split("-")
        span = by_attempt[(request["job"]["id"], request["job"]["attempt"])]
        assert version == "00" and int(flags, 16) & 1  # sampled
        assert int(trace_id, 16) == span.context.trace_id
        assert int(span_id, 16) == span.context.span_id


def test_tracing_off_adds_no_header() -> None:
    """Without tracing installed (the default), requests get no trace headers."""
    assert trace_headers(1, 1) == {}


def test_enabled_without_the_sdk_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """otel.enabled without the otel extra installed: `jobd check` and `jobd run` refuse
    the file (exit 2) at the key, saying what to install."""
    import jobd.config
    from jobd.config import load_config_text
    from jobd.errors import ConfigError

    monkeypatch.setattr(jobd.config, "_importable", lambda module: False)
    with pytest.raises(ConfigError) as info:
        load_config_text("version: 1\notel: {enabled: true}\n", "jobd.yaml", env={})
    (problem,) = info.value.problems
    assert "otel.enabled" in str(problem) and "pip install 'pgjobd[otel]'" in str(problem)
    spec = load_config_text("version: 1\notel: {enabled: false}\n", "jobd.yaml", env={})
    assert spec.otel.enabled is False


async def test_the_attempt_span_is_current_in_its_own_task_only(
    exporter: InMemorySpanExporter,
) -> None:
    """job.start in a task of its own makes the attempt's span the current one there
    (spans an action makes are its children); a task that starts several attempts (a
    batch) has none current, so no job's span adopts another's child spans."""
    from opentelemetry import trace

    from jobd.telemetry import emit

    def start(job_id: int) -> int:
        emit(
            "job.start",
            {"queue_wait_ms": 1.0},
            {"job_id": job_id, "queue": "q", "worker": "w", "attempt": 1},
        )
        return trace.get_current_span().get_span_context().span_id

    async def single() -> tuple[int, int]:
        return start(1), trace.get_current_span().get_span_context().span_id

    async def batch() -> int:
        start(2)
        start(3)
        return trace.get_current_span().get_span_context().span_id

    alone, after = await asyncio.create_task(single())
    assert alone == after != 0
    assert await asyncio.create_task(batch()) == 0  # no span is current in the batch's task
    assert trace.get_current_span().get_span_context().span_id == 0  # the test's own task
    for job_id in (1, 2, 3):
        emit(
            "job.complete",
            {"duration_ms": 1.0},
            {"job_id": job_id, "queue": "q", "worker": "w", "attempt": 1, "outcome": "completed"},
        )
    assert len(exporter.get_finished_spans()) == 3
