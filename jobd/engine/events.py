"""The engine's telemetry events (see `jobd.telemetry`): one function per kind of event,
so each name and its keys are spelled in one place (docs/logging.md lists them).

Every event about a job carries `job_id`, `queue`, `worker`, `attempt`; the events that
end an attempt also carry `outcome` (a `jobd.engine.jobs.OutcomeKind`), which the metrics
count by.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobd.engine.jobs import Job, OutcomeKind
from jobd.telemetry import EMPTY, emit

EVENT_OF: Mapping[OutcomeKind, str] = {
    OutcomeKind.COMPLETED: "job.complete",
    OutcomeKind.HANDLED: "job.complete",
    OutcomeKind.RETRIED: "job.retry",
    OutcomeKind.DISCARDED: "job.discard",
    OutcomeKind.CANCELLED: "job.cancel",
    OutcomeKind.SNOOZED: "job.snooze",
    OutcomeKind.RELEASED: "job.release",
    OutcomeKind.RESCUED: "job.rescue",
}


def job_keys(job_id: int, queue: str, worker: str, attempt: int) -> dict[str, Any]:
    return {"job_id": job_id, "queue": queue, "worker": worker, "attempt": attempt}


def emit_job_ended(
    kind: OutcomeKind,
    job_id: int,
    queue: str,
    worker: str,
    attempt: int,
    measurements: Mapping[str, float] = EMPTY,
    extra: Mapping[str, Any] = EMPTY,
) -> None:
    """An attempt ended with `kind` and its outcome is written."""
    metadata = job_keys(job_id, queue, worker, attempt)
    metadata["outcome"] = kind
    metadata.update(extra)
    emit(EVENT_OF[kind], measurements, metadata)


def emit_outcome(kind: OutcomeKind, job: Job, delay_s: float, error: Any) -> None:
    """A non-completion outcome was written: the delay and reason under their event's keys."""
    measurements: dict[str, float] = {}
    extra: dict[str, Any] = {}
    if kind == OutcomeKind.RETRIED:
        measurements["retry_in_s"] = round(delay_s, 3)
    elif kind == OutcomeKind.SNOOZED:
        measurements["snooze_s"] = delay_s
    elif kind == OutcomeKind.DISCARDED:
        extra["error"] = error
    elif kind == OutcomeKind.CANCELLED:
        extra["reason"] = error
    emit_job_ended(kind, job.id, job.queue, job.worker, job.attempt, measurements, extra)


def emit_lost(job_id: int, queue: str, worker: str, attempt: int, kind: OutcomeKind) -> None:
    """An outcome was not written: the attempt's claim was gone when it was acked."""
    metadata = job_keys(job_id, queue, worker, attempt)
    metadata["outcome"] = kind
    metadata["reason"] = "claim lost (job rescued or changed meanwhile); outcome not written"
    emit("job.ack_lost", EMPTY, metadata)


def emit_start(job: Job) -> None:
    """An attempt starts; `queue_wait_ms` is the time from `scheduled_at` to the claim."""
    wait_s = (job.attempted_at - job.scheduled_at).total_seconds() if job.attempted_at else 0
    emit(
        "job.start",
        {"queue_wait_ms": round(max(wait_s, 0.0) * 1000, 3)},
        job_keys(job.id, job.queue, job.worker, job.attempt),
    )


def emit_fail(job: Job, kind: str, error: str) -> None:
    """An attempt failed (before its outcome, retry or discard, is decided and written)."""
    metadata = job_keys(job.id, job.queue, job.worker, job.attempt)
    metadata.update(max_attempts=job.max_attempts, kind=kind, error=error)
    emit("job.fail", EMPTY, metadata)
