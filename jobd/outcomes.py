"""What work sees of its job, and how it ends an attempt other than by returning.

Neutral ground between the engine, the actions and users' entrypoints: `jobd.Snooze`,
`jobd.Cancel` and `jobd.Discard` are raised by actions and understood by the engine, and
`JobView` is the read-only job an action is handed. This module imports nothing of jobd,
so actions never need the engine to speak to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class JobView(Protocol):
    """A job as an action sees it: one attempt of one claimed job. Read it, never change
    it (the engine owns the job's state)."""

    # In alphabetical order; `jobd.engine.jobs.Job` has them all (and more).
    args: dict[str, Any]  # the job's arguments (for triggers: pk, tenant, actor, input)
    attempt: int  # 1 on the first attempt
    id: int
    inserted_at: datetime
    max_attempts: int
    meta: dict[str, Any]
    priority: int
    queue: str
    scheduled_at: datetime
    tags: list[str]
    worker: str


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


def failure_kind(exc: BaseException) -> str:
    """The `kind` of a failed attempt, the same in the job's errors and in on_error's
    `{error: kind}`: the one the exception names (an action's failure, the engine's
    RescuedTooOften), `timeout` for a timeout (a trigger's own `timeout` arrives as one),
    else `error`."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    return "timeout" if isinstance(exc, TimeoutError) else "error"
