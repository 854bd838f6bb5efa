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


def configure(level: str = "info", fmt: LogFormat = "auto", stream: Any = None) -> None:
    """Set up structlog for the process: JSON when not on a TTY (or asked for), else console.

    Only events at `level` and above are written. Metrics do not depend on it: they
    subscribe to `jobd.telemetry`, not to log lines.
    """
    out = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
