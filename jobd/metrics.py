"""Prometheus metrics, fed from the log events the engine, schedulers and actions already
emit: nothing in the engine imports this module.

    metrics = default_metrics()
    structlog processors: [..., add_log_level, metrics.processor, drop_below("info"), ...]

`Metrics.processor` is a structlog processor: it reads an event dict, updates counters,
and returns the event unchanged. It must run BEFORE the level filter, because some events
it counts are logged at debug (`action.http`, `job.start`): configure structlog with
`make_filtering_bound_logger(logging.DEBUG)` and filter with `drop_below(level)` placed
after the processor. With a filtering bound logger at the configured level instead,
events below it never reach the processor and their metrics stay at zero.

Events read (keys): job.complete (queue, worker, duration_ms), job.retry, job.discard,
job.cancel, job.snooze, job.rescue (queue, worker), job.start (queue, queue_wait_ms when
present), scheduler.run (trigger, scanned, enqueued), action.http (action, status),
leader.elected / leader.resigned. Queue depth and the leader gauge are also refreshed on
each scrape (`refresh`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from jobd.ops import JOB_STATES, queue_depths

OUTCOMES = {
    "job.complete": "completed",
    "job.retry": "retried",
    "job.discard": "discarded",
    "job.cancel": "cancelled",
    "job.snooze": "snoozed",
    "job.rescue": "rescued",
}
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Processor = Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]


class Metrics:
    """jobd's metrics in a registry of their own (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = Counter("jobd_jobs", "Job attempts ended, by outcome, queue and worker.",
                            ["outcome", "queue", "worker"], registry=r)  # fmt: skip
        self.execution = Histogram("jobd_job_execution_seconds",
                                   "Run time of completed jobs.", ["queue", "worker"],
                                   buckets=_SECONDS_BUCKETS, registry=r)  # fmt: skip
        self.queue_wait = Histogram("jobd_job_queue_wait_seconds",
                                    "Time from scheduled_at to start.", ["queue"],
                                    buckets=_SECONDS_BUCKETS, registry=r)  # fmt: skip
        self.depth = Gauge("jobd_queue_depth", "Jobs per queue and state.", ["queue", "state"],
                           registry=r)  # fmt: skip
        self.scanned = Counter("jobd_scheduler_rows_scanned", "Rows the schedulers scanned.",
                               ["trigger"], registry=r)  # fmt: skip
        self.enqueued = Counter("jobd_scheduler_rows_enqueued", "Jobs the schedulers enqueued.",
                                ["trigger"], registry=r)  # fmt: skip
        self.http = Counter("jobd_http_action_responses", "HTTP action responses by status.",
                            ["action", "status"], registry=r)  # fmt: skip
        self.leader = Gauge("jobd_leader", "1 when this node holds the leader lease.", registry=r)

    # -- feeding ------------------------------------------------------------------------

    def observe(self, event: Mapping[str, Any]) -> None:
        """Update the metrics an event speaks of; unknown events are ignored."""
        name = event.get("event")
        if name in OUTCOMES:
            queue, worker = str(event.get("queue", "")), str(event.get("worker", ""))
            self.jobs.labels(OUTCOMES[name], queue, worker).inc()
            if name == "job.complete" and isinstance(event.get("duration_ms"), int | float):
                self.execution.labels(queue, worker).observe(event["duration_ms"] / 1000)
        elif name == "job.start" and isinstance(event.get("queue_wait_ms"), int | float):
            self.queue_wait.labels(str(event.get("queue", ""))).observe(
                max(0.0, event["queue_wait_ms"] / 1000)
            )
        elif name == "scheduler.run":
            trigger = str(event.get("trigger", ""))
            self.scanned.labels(trigger).inc(_count(event.get("scanned")))
            self.enqueued.labels(trigger).inc(_count(event.get("enqueued")))
        elif name == "action.http":
            self.http.labels(str(event.get("action", "")), str(event.get("status"))).inc()
        elif name == "leader.elected":
            self.leader.set(1)
        elif name == "leader.resigned":
            self.leader.set(0)

    def processor(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: observe, never fail the log call, return `event` as is."""
        with contextlib.suppress(Exception):  # a metrics bug must not break logging
            self.observe(event)
        return event

    # -- scraping -----------------------------------------------------------------------

    def set_depths(self, depths: Mapping[str, Mapping[str, int]]) -> None:
        """Set every state of every queue (absent states to 0, so drained ones fall)."""
        for queue, states in depths.items():
            for state in JOB_STATES:
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

    async def refresh(self, conn: Any, schema: str, *, is_leader: bool | None = None) -> None:
        """Read queue depths from the database (and the leader flag when given)."""
        self.set_depths(await queue_depths(conn, schema))
        if is_leader is not None:
            self.leader.set(1 if is_leader else 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


def _count(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The daemon's one Metrics instance (created on first use)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default


def drop_below(level: str) -> Processor:
    """A structlog processor dropping events below `level` (needs `add_log_level` before
    it); use it AFTER `Metrics.processor` with a logger that filters nothing itself."""
    threshold = logging.getLevelNamesMapping()[level.upper()]
    names = logging.getLevelNamesMapping()

    def drop(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        level_name = str(event.get("level", method)).upper()
        if names.get(level_name, logging.INFO) < threshold:
            raise structlog.DropEvent
        return event

    return drop
