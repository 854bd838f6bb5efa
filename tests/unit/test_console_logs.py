"""Console log lines (a terminal, or log.format: console) read in order: event, the job
and its trigger, the details, the error last; keys whose value is None are left out.
JSON lines keep every key."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from jobd.logging import configure


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.contextvars.clear_contextvars()
    structlog.configure(**saved)


def line(fmt: str) -> str:
    out = io.StringIO()
    configure("info", fmt, out)  # type: ignore[arg-type]
    structlog.contextvars.bind_contextvars(
        job_id=7, queue="orders", worker="orders.process", resource="orders", trigger="process"
    )
    structlog.get_logger("t").warning(
        "job.fail", error="ValueError: boom", max_attempts=5, kind="error", attempt=1, tenant=None
    )
    return out.getvalue()


def test_console_puts_the_job_first_and_the_error_last() -> None:
    """The event name, then job_id, queue, worker, attempt, resource, trigger, then the
    rest, then kind and error; the None tenant is not shown."""
    text = line("console")
    order = [
        "job.fail",
        "job_id=7",
        "queue=orders",
        "worker=orders.process",
        "attempt=1",
        "resource=orders",
        "trigger=process",
        "max_attempts=5",
        "kind=error",
        "error=",
    ]
    positions = [text.index(token) for token in order]
    assert positions == sorted(positions), text
    assert text.rstrip().endswith("'ValueError: boom'")
    assert "tenant" not in text


def test_json_keeps_every_key() -> None:
    """JSON consumers still get every key, None included."""
    event = json.loads(line("json"))
    assert event["tenant"] is None and event["error"] == "ValueError: boom"
