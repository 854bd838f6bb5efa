"""Logging: structlog, one line per event, JSON or console.

Events have stable names (`job.start`, `leader.elected`, ...; see docs/logging.md) and keys;
context such as `node_id` is bound through contextvars. Secrets never reach a log line: the
redaction processor below masks values of secret-looking keys as a last line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "json", "console"]

_SECRET_KEYS = ("authorization", "token", "secret", "password", "api_key", "apikey", "cookie")
REDACTED = "[redacted]"


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {k: _masked(k, v, depth + 1) for k, v in value.items()}
    return value


def _masked(key: object, value: Any, depth: int) -> Any:
    # A flag or nothing says no secret (`token=True`: "a token is set"): keep it readable.
    if _is_secret_key(key) and not (value is None or isinstance(value, bool)):
        return REDACTED
    return _redact(value, depth)


def _is_secret_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in _SECRET_KEYS)


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask values whose key looks like a secret, at any depth."""
    for key in list(event):
        if key != "event":
            event[key] = _masked(key, event[key], 0)
    return event


# Console lines read left to right: what happened, to which job, of which trigger, then the
# details, and what went wrong last (where the eye lands at the end of the line).
CONSOLE_FIRST = (
    "job_id",
    "queue",
    "worker",
    "attempt",
    "resource",
    "trigger",
    "schedule",
    "tenant",
    "node_id",
)
CONSOLE_LAST = ("reason", "kind", "error")


def console_order(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for the console: keys without a value (None) left out, the
    job and its trigger first, the error last (the renderer puts the time, level and
    event name before all of them, and a traceback after)."""
    present = {k: v for k, v in event.items() if v is not None}
    first = [k for k in ("timestamp", "level", "event", *CONSOLE_FIRST) if k in present]
    last = [k for k in CONSOLE_LAST if k in present]
    middle = sorted(k for k in present if k not in first and k not in last)
    ordered = {k: present[k] for k in (*first, *middle, *last)}
    event.clear()
    event.update(ordered)
    return event


def configure(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Set up structlog for the process: JSON when not on a TTY (or asked for), else console
    (`console_order`: None values dropped, the job first, the error last).

    Only events at `level` and above are written. Metrics do not depend on it: they
    subscribe to `jobd.telemetry`, not to log lines.
    """
    out = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty(), sort_keys=False)
    )
    console: list[Any] = [] if json_output else [console_order]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            *console,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
