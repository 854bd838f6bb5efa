"""Job records and the engine's vocabulary: job states, outcome kinds, a lost claim."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobd.errors import JobdError


class JobState(StrEnum):
    """Oban's job states."""

    AVAILABLE = "available"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED})


class OutcomeKind(StrEnum):
    """How one attempt ended, as counted by drains, telemetry and metrics."""

    COMPLETED = "completed"
    HANDLED = "handled"  # failed for good, handled by a follow-up (on_error); completed
    RETRIED = "retried"  # failed, another attempt follows after a backoff
    DISCARDED = "discarded"
    CANCELLED = "cancelled"
    SNOOZED = "snoozed"  # runs again later without using up an attempt
    RELEASED = "released"  # cut short by a graceful stop, back to available
    RESCUED = "rescued"  # its node died; the lifeline made it available again


class ClaimLost(JobdError):
    """This attempt's claim on its job is gone (the job was rescued and claimed again, or
    cancelled): nothing it wrote may commit, and its outcome is not recorded."""


@dataclass(frozen=True)
class JobSpec:
    """What an inserter asks for. Unique jobs carry `uniq_key`; while a job with the same
    key is incomplete (or in a terminal state named in `uniq_hold`, for the seconds given
    there, None meaning "while retained"), an insert with that key is skipped."""

    worker: str
    args: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 20
    scheduled_at: datetime | None = None  # None: available now
    uniq_key: str | None = None
    uniq_hold: dict[str, float | None] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class Job:
    """A job as a worker sees it (a claimed row of the jobs table). Treat it as read-only;
    it satisfies `jobd.outcomes.JobView`.

    Not a frozen dataclass on purpose: one is built per claimed row, and a frozen
    dataclass's __init__ costs about 1.5 us more (measured), a few percent of the engine's
    whole per-job cost. Identity equality: two claims of one row are two attempts."""

    id: int
    queue: str
    worker: str
    args: dict[str, Any]
    meta: dict[str, Any]
    tags: list[str]
    attempt: int
    max_attempts: int
    priority: int
    inserted_at: datetime
    scheduled_at: datetime
    attempted_at: datetime | None
    attempted_by: str | None
    errors: list[dict[str, Any]] = field(default_factory=list)
    state: JobState = JobState.EXECUTING
