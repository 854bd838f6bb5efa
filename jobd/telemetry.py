"""Telemetry: every event that counts is emitted once, here, and subscribers react to it.

Oban's `:telemetry` is the model: an event has a name, measurements (numbers: durations,
counts) and metadata (what it is about: job id, queue, worker, trigger ...). Code that
does the work calls `emit`; it does not know who listens.

    emit("job.complete", {"duration_ms": 3.2}, {"job_id": 7, "queue": "q", "worker": "w"})
    attach("my-metrics", handler, events={"job.complete"})   # handler(name, m, meta)

Two subscribers come with jobd: the default one writes each event as one structlog line
(`event=name`, measurements and metadata as keys, the level from `LEVELS`, so the log
configuration decides what is shown), and the Prometheus metrics of the admin listener
(`jobd.admin.metrics`), which count every event whatever the log level. The event names
and keys are documented in docs/logging.md; they are a stable interface.

A handler that raises is detached (as `:telemetry` does) and that is logged once: a bug
in a subscriber must not break the code that emits. (The log subscriber stays: a line it
could not write is lost, the next one is tried.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

Handler = Callable[[str, Mapping[str, float], Mapping[str, Any]], None]
EMPTY: Mapping[str, float] = {}

# The log level of each event's line; an event not listed is logged at info, and one that
# carries an `error` at least at warning.
LEVELS: Mapping[str, str] = {
    "job.start": "debug",
    "job.fail": "warning",
    "job.discard": "error",
    "job.ack_lost": "warning",
    "job.claim_lost": "warning",
    "job.database_error": "warning",
    "action.http": "debug",
    "jobs.staged": "debug",
}

_handlers: dict[str, tuple[Handler, frozenset[str] | None]] = {}
_routes: dict[str, tuple[Handler, ...]] = {}  # event -> handlers, rebuilt on (de)attach


def attach(handler_id: str, handler: Handler, events: Iterable[str] | None = None) -> None:
    """Call `handler(name, measurements, metadata)` for `events` (None: every event);
    attaching an id again replaces its handler."""
    _handlers[handler_id] = (handler, None if events is None else frozenset(events))
    _routes.clear()


def detach(handler_id: str) -> None:
    """Stop calling the handler attached as `handler_id` (no error when there is none)."""
    if _handlers.pop(handler_id, None) is not None:
        _routes.clear()


def emit(event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    """Hand one event to every handler attached for it, in the order they were attached."""
    handlers = _routes.get(event)
    if handlers is None:
        handlers = _routes[event] = tuple(
            handler for handler, events in _handlers.values() if events is None or event in events
        )
    for handler in handlers:
        try:
            handler(event, measurements, metadata)
        except Exception as exc:
            _drop_failing(handler, event, exc)


def _drop_failing(handler: Handler, event: str, exc: Exception) -> None:
    for handler_id, (attached, _) in list(_handlers.items()):
        if attached is handler and handler_id != LOG_HANDLER_ID:  # logging cannot report itself
            detach(handler_id)
            structlog.get_logger("jobd.telemetry").error(
                "telemetry.handler_detached", handler=handler_id, on_event=event, error=repr(exc)
            )


class LogSubscriber:
    """The default subscriber: one structlog line per event.

    The bound logger is kept between events (the lazy module-level proxy builds a new one
    on every call: measured as the biggest per-job cost in the engine) and built again
    when structlog's configuration changes (a check of about 0.3 us).
    """

    def __init__(self, name: str = "jobd") -> None:
        self.name = name
        self._logger: Any = None
        self._configured: tuple[Any, ...] = (None, None, None)

    def __call__(
        self, event: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]
    ) -> None:
        config = structlog.get_config()
        configured = (config["processors"], config["wrapper_class"], config["logger_factory"])
        logger = self._logger
        stale = any(a is not b for a, b in zip(configured, self._configured, strict=True))
        if logger is None or stale:
            logger = self._logger = structlog.get_logger(self.name).bind()
            self._configured = configured
        level = LEVELS.get(event, "info")
        if level in ("debug", "info") and metadata.get("error"):
            level = "warning"
        getattr(logger, level)(event, **metadata, **measurements)


# Headers that carry the trace context of a job attempt to the services its HTTP actions
# call (W3C `traceparent`). A tracer (jobd.daemon.tracing) provides them; without one,
# none are added and this costs one check per request.
HeaderProvider = Callable[[int, int], Mapping[str, str]]
_header_provider: HeaderProvider | None = None
NO_HEADERS: Mapping[str, str] = {}


def set_header_provider(provider: HeaderProvider | None) -> None:
    """`provider(job_id, attempt)` -> headers for the attempt's outgoing requests."""
    global _header_provider
    _header_provider = provider


def trace_headers(job_id: int, attempt: int) -> Mapping[str, str]:
    """The trace context headers for a request made by this job attempt (often none)."""
    provider = _header_provider
    if provider is None:
        return NO_HEADERS
    try:
        return provider(job_id, attempt)
    except Exception:  # tracing must never fail a job
        return NO_HEADERS


LOG_HANDLER_ID = "jobd.log"
log_subscriber = LogSubscriber()
attach(LOG_HANDLER_ID, log_subscriber)
