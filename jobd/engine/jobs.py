"""Job records, states, and the outcomes a worker can ask for by raising."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from jobd.engine.context import JobContext as JobContext  # defined there, named here too


class JobState(StrEnum):
    """Oban's job states."""

    AVAILABLE = "available"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    RETRYABLE = "retryable"
    COMPLETED = "completed"
    DISCARDED = "discarded"
    CANCELLED = "cancelled"


INCOMPLETE_STATES = frozenset(
    {JobState.AVAILABLE, JobState.SCHEDULED, JobState.EXECUTING, JobState.RETRYABLE}
)
TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.DISCARDED, JobState.CANCELLED})


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
    """A job as a worker sees it (a claimed row of the jobs table). Treat it as read-only.

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


class JobOutcome(Exception):
    """Base of the outcomes a worker raises to end an attempt other than by success."""


class Snooze(JobOutcome):
    """Run the job again after `seconds`, without using up an attempt."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"snoozed for {seconds}s")
        self.seconds = float(seconds)


class Cancel(JobOutcome):
    """End the job as cancelled; it will not run again."""

    def __init__(self, reason: str = "cancelled") -> None:
        super().__init__(reason)
        self.reason = reason


class Discard(JobOutcome):
    """End the job as discarded (failed for good) without further attempts."""

    def __init__(self, reason: str = "discarded") -> None:
        super().__init__(reason)
        self.reason = reason
