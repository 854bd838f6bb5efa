"""Prometheus metrics, fed by telemetry (`jobd.telemetry`): every event is counted whatever
the log level, and nothing that emits an event knows that metrics exist.

    metrics = default_metrics()      # created once and attached to telemetry
    metrics.render()                 # the exposition text for GET /metrics

Events read (keys): the events that end an attempt (`outcome`, `queue`, `worker`;
`duration_ms` on job.complete), job.start (`queue_wait_ms`), scheduler.run (`trigger`,
`scanned`, `enqueued`), action.http (`action`, `status`), leader.elected and
leader.resigned. Queue depths, the jobs waiting for a worker, the live nodes and the
leader gauge are also refreshed on each scrape (`refresh`), and the process's own CPU,
memory and open file descriptors are read then (prometheus_client's ProcessCollector:
`process_*`, Linux only). A job whose last attempt failed and whose
`on_error` handled it counts with outcome `handled`, never as `completed`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

from jobd import __version__
from jobd.engine.events import EVENT_OF
from jobd.engine.jobs import JobState, OutcomeKind
from jobd.engine.ops import queue_depths, waiting_for_worker
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.telemetry import attach

HANDLER_ID = "jobd.metrics"
ENDING_EVENTS = frozenset(EVENT_OF.values())  # the events that end an attempt
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """jobd's metrics in a registry of their own (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter(
            "jobd_jobs",
            "Job attempts ended, by outcome, queue and worker.",
            ["outcome", "queue", "worker"],
            registry=r,
        )
        self.execution = Histogram(
            "jobd_job_execution_seconds",
            "Run time of completed jobs.",
            ["queue", "worker"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "jobd_job_queue_wait_seconds",
            "Time from scheduled_at to start.",
            ["queue"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.depth = Gauge(
            "jobd_queue_depth", "Jobs per queue and state.", ["queue", "state"], registry=r
        )
        self.scanned = Counter(
            "jobd_scheduler_rows_scanned", "Rows the schedulers scanned.", ["trigger"], registry=r
        )
        self.enqueued = Counter(
            "jobd_scheduler_rows_enqueued", "Jobs the schedulers enqueued.", ["trigger"], registry=r
        )
        self.http = Counter(
            "jobd_http_action_responses",
            "HTTP action responses by status.",
            ["action", "status"],
            registry=r,
        )
        self.leader = Gauge("jobd_leader", "1 when this node holds the leader lease.", registry=r)
        self.waiting = Gauge(
            "jobd_jobs_waiting_for_worker",
            "Jobs no live node will claim: none serves their queue and knows their worker.",
            ["queue", "worker"],
            registry=r,
        )
        self.nodes = Gauge(
            "jobd_nodes", "Live daemons (node rows) sharing the database.", registry=r
        )
        Info("jobd_build", "The running jobd's version.", registry=r).info({"version": __version__})
        ProcessCollector(registry=r)  # process_cpu_seconds_total, _resident_memory_bytes, ...

    # -- feeding ------------------------------------------------------------------------

    def handle(
        self, event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> None:
        """A telemetry handler: update the metrics `event` speaks of; others are ignored."""
        if event in ENDING_EVENTS:
            queue, worker = str(metadata.get("queue", "")), str(metadata.get("worker", ""))
            outcome = str(metadata.get("outcome") or OutcomeKind.COMPLETED)
            self.jobs.labels(outcome, queue, worker).inc()
            duration_ms = measurements.get("duration_ms")
            if event == "job.complete" and isinstance(duration_ms, int | float):
                self.execution.labels(queue, worker).observe(duration_ms / 1000)
        elif event == "job.start" and isinstance(measurements.get("queue_wait_ms"), int | float):
            wait_s = max(0.0, measurements["queue_wait_ms"] / 1000)
            self.queue_wait.labels(str(metadata.get("queue", ""))).observe(wait_s)
        elif event == "scheduler.run":
            trigger = str(metadata.get("trigger", ""))
            self.scanned.labels(trigger).inc(_count(measurements.get("scanned")))
            self.enqueued.labels(trigger).inc(_count(measurements.get("enqueued")))
        elif event == "action.http":
            action, status = str(metadata.get("action", "")), str(metadata.get("status"))
            self.http.labels(action, status).inc()
        elif event == "leader.elected":
            self.leader.set(1)
        elif event == "leader.resigned":
            self.leader.set(0)

    # -- scraping -----------------------------------------------------------------------

    def set_depths(self, depths: Mapping[str, Mapping[str, int]]) -> None:
        """Set every state of every queue (absent states to 0, so drained ones fall)."""
        for queue, states in depths.items():
            for state in JobState:
                self.depth.labels(queue, state).set(states.get(state, 0))
        for labels in list(self._depth_labels()):
            if labels[0] not in depths:
                self.depth.labels(*labels).set(0)

    def _depth_labels(self) -> list[tuple[str, str]]:
        return [
            (s.labels["queue"], s.labels["state"])
            for metric in self.depth.collect()
            for s in metric.samples
        ]

    async def refresh(
        self, conn: Connection, schema: str, *, is_leader: bool | None = None
    ) -> None:
        """Read queue depths, the jobs waiting for a worker and the live nodes from the
        database (and the leader flag when given)."""
        self.set_depths(await queue_depths(conn, schema))
        self.nodes.set(len(await conn.fetch(queries(schema)["ops_nodes"])))
        self.waiting.clear()  # a pair no longer waiting disappears
        for row in await waiting_for_worker(conn, schema):
            self.waiting.labels(row["queue"], row["worker"]).set(row["jobs"])
        if is_leader is not None:
            self.leader.set(1 if is_leader else 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def _count(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The daemon's one Metrics instance, created and attached to telemetry on first use."""
    global _default
    if _default is None:
        _default = Metrics()
        attach(HANDLER_ID, _default.handle)
    return _default
