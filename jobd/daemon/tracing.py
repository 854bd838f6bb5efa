"""OpenTelemetry traces, made from jobd's telemetry events (`jobd.telemetry`), so that
nothing that does the work knows about tracing. Needs the `otel` extra; off unless the
configuration says `otel: {enabled: true}`.

    tracing = Tracing.install(spec.otel)          # at start (jobd run)
    ...
    tracing.shutdown()                             # at stop: flushes what is buffered

Spans (attributes: the events' metadata and measurements, as `jobd.<key>`):

- `job <worker>`: one per job attempt, from `job.start` to the event that ends the
  attempt (`job.complete`, `job.retry`, `job.discard`, `job.cancel`, `job.snooze`,
  `job.release`, `job.rescue`, or `job.ack_lost`/`job.claim_lost` when its outcome was not
  written). `job.fail` adds an exception event and sets the status to error; a completed
  attempt's status is ok. A root span: jobs are not children of whoever enqueued them.
  In the job's task it is the current span, so spans a Python action makes itself are
  its children (not in a batch of trigger jobs, which share one task: there none is).
- `scheduler <trigger>`: one per scheduler scan (per tenant), from `scheduler.run`
  (`scanned`, `enqueued`, `pages`, `duration_ms`), a child of its scheduler job's span.

HTTP actions send the attempt's span as a W3C `traceparent` header (`otel.traceparent`),
through `jobd.telemetry.set_header_provider`.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobd import __version__
from jobd.engine.events import EVENT_OF
from jobd.engine.jobs import OutcomeKind
from jobd.model import Otel
from jobd.telemetry import attach, detach, set_header_provider

HANDLER_ID = "jobd.tracing"
MAX_OPEN_SPANS = 10_000  # attempts whose end never came (a lost event) are ended past it
ENDING = frozenset(EVENT_OF.values()) | {"job.ack_lost", "job.claim_lost"}
EVENTS = ENDING | {"job.start", "job.fail", "job.database_error", "scheduler.run"}
# Keys of the job's bound log context worth a span attribute (the trigger worker binds them).
CONTEXT_KEYS = ("resource", "trigger", "schedule", "tenant")
OK_OUTCOMES = frozenset({OutcomeKind.COMPLETED})
ERROR_OUTCOMES = frozenset({OutcomeKind.DISCARDED, OutcomeKind.HANDLED})

log = structlog.get_logger("jobd.tracing")


def _value(value: Any) -> str | bool | int | float | None:
    """An attribute value OpenTelemetry takes: primitives as they are, others as JSON."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def attributes(*parts: Mapping[str, Any]) -> dict[str, str | bool | int | float]:
    """`jobd.<key>` for every key of the event (None values left out)."""
    found: dict[str, str | bool | int | float] = {}
    for part in parts:
        for key, raw in part.items():
            value = _value(raw)
            if value is not None:
                found[f"jobd.{key}"] = value
    return found


class Tracing:
    """Spans from telemetry events, exported through an SDK TracerProvider of jobd's own
    (installed as the global provider when none is set)."""

    def __init__(self, provider: TracerProvider, *, traceparent: bool) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("jobd", __version__)
        self.traceparent = traceparent
        self.open: OrderedDict[tuple[int, int], Span] = OrderedDict()
        # Per task: the token of the attempt span made current there (see _make_current).
        self._current: weakref.WeakKeyDictionary[asyncio.Task[Any], object] = (
            weakref.WeakKeyDictionary()
        )
        self._propagator = TraceContextTextMapPropagator()

    # -- setup --------------------------------------------------------------------------

    @classmethod
    def install(cls, settings: Otel, exporter: SpanExporter | None = None) -> Tracing:
        """Build the provider from `settings` (or around `exporter`: spans then go out at
        once, as tests want) and subscribe to the events."""
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        provider = TracerProvider(resource=resource)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.exporter == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=settings.endpoint) if settings.endpoint else None
            provider.add_span_processor(BatchSpanProcessor(otlp or OTLPSpanExporter()))
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(provider)  # Python actions' own spans join in
        tracing = cls(provider, traceparent=settings.traceparent)
        attach(HANDLER_ID, tracing.handle, events=EVENTS)
        if settings.traceparent:
            set_header_provider(tracing.headers)
        log.info("otel.enabled", exporter=settings.exporter if exporter is None else "custom")
        return tracing

    def shutdown(self) -> None:
        """Stop listening, end what is open, flush the exporter."""
        detach(HANDLER_ID)
        set_header_provider(None)
        while self.open:
            _, span = self.open.popitem(last=False)
            span.set_attribute("jobd.outcome", "unknown")
            span.end()
        self.provider.shutdown()

    # -- events -------------------------------------------------------------------------

    def handle(
        self, event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> None:
        """A telemetry handler: open, annotate or end the spans `event` speaks of."""
        if event == "scheduler.run":
            self._scheduler_run(measurements, metadata)
            return
        key = (int(metadata.get("job_id", 0)), int(metadata.get("attempt", 0)))
        if event == "job.start":
            self._start(key, measurements, metadata)
            return
        span = self.open.get(key)
        if span is None:
            return
        span.set_attributes(attributes(_bound_context(), metadata, measurements))
        if event == "job.fail":
            span.add_event("job.fail", attributes(metadata))
            span.set_status(Status(StatusCode.ERROR, str(metadata.get("kind") or "error")))
        elif event in ENDING:
            del self.open[key]
            outcome = metadata.get("outcome")
            if outcome in OK_OUTCOMES:
                span.set_status(Status(StatusCode.OK))
            elif outcome in ERROR_OUTCOMES:
                span.set_status(Status(StatusCode.ERROR, str(outcome)))
            span.end()

    def _start(
        self, key: tuple[int, int], measurements: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> None:
        span = self.tracer.start_span(
            f"job {metadata.get('worker', '')}",
            context=otel_context.Context(),  # a root span, whatever the task's context
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "jobd",
                "messaging.destination.name": str(metadata.get("queue", "")),
                "messaging.message.id": str(key[0]),
                **attributes(metadata, measurements),
            },
        )
        self.open[key] = span
        if len(self.open) > MAX_OPEN_SPANS:
            _, oldest = self.open.popitem(last=False)
            oldest.set_attribute("jobd.outcome", "unknown")
            oldest.end()
        self._make_current(span, key)

    def _make_current(self, span: Span, key: tuple[int, int]) -> None:
        """In the job's own task (the engine emits job.start in it) its span is the current
        one, for the scheduler's span and for spans an action makes itself. A task that
        starts several jobs runs them as one batch: there no single attempt is current."""
        task = _current_task()
        if task is None:
            return
        started = self._current.get(task)
        if started is None:
            self._current[task] = otel_context.attach(trace.set_span_in_context(span))
        elif isinstance(started, contextvars.Token):
            otel_context.detach(started)
            self._current[task] = _BATCH

    def _scheduler_run(
        self, measurements: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> None:
        end_ns = time.time_ns()
        duration_ns = int(float(measurements.get("duration_ms", 0)) * 1_000_000)
        span = self.tracer.start_span(
            f"scheduler {metadata.get('trigger', '')}",
            kind=SpanKind.INTERNAL,
            start_time=end_ns - max(duration_ns, 0),
            attributes=attributes(metadata, measurements),
        )
        span.end(end_time=end_ns)

    # -- propagation --------------------------------------------------------------------

    def headers(self, job_id: int, attempt: int) -> Mapping[str, str]:
        """`traceparent` (and `tracestate`) naming the attempt's span; none when unknown."""
        span = self.open.get((job_id, attempt))
        if span is None:
            return {}
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier


_BATCH = object()  # a task that started several attempts: none of them is current there


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _bound_context() -> dict[str, Any]:
    bound = structlog.contextvars.get_contextvars()
    return {k: bound[k] for k in CONTEXT_KEYS if k in bound}
