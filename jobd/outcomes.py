"""What work sees of its job, and how it ends an attempt other than by returning.

Neutral ground between the engine, the actions and users' entrypoints: `jobd.Snooze`,
`jobd.Cancel` and `jobd.Discard` are raised by actions and understood by the engine, and
`JobView` is the read-only job an action is handed. This module imports nothing of jobd,
so actions never need the engine to speak to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol


class JobView(Protocol):
    """A job as an action sees it (read-only): one attempt of one claimed job."""

    @property
    def id(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def worker(self) -> str: ...
    @property
    def args(self) -> Mapping[str, Any]: ...
    @property
    def meta(self) -> Mapping[str, Any]: ...
    @property
    def tags(self) -> Sequence[str]: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def inserted_at(self) -> datetime: ...
    @property
    def scheduled_at(self) -> datetime: ...


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
