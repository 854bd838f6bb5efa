"""Worker registry: a job's `worker` string names an async callable and its settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from jobd.engine.backoff import Backoff, oban_default
from jobd.engine.context import JobContext
from jobd.engine.jobs import Job

Worker = Callable[[Job, JobContext], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Registered:
    """A worker with its per-attempt timeout (None = none) and backoff (None = Oban's)."""

    name: str
    fn: Worker
    timeout_s: float | None = None
    backoff: Backoff | None = None

    def backoff_s(self, attempt: int, max_attempts: int) -> float:
        """Seconds to wait before retrying after failed `attempt`."""
        if self.backoff is None:
            return oban_default(attempt, max_attempts)
        return max(0.0, float(self.backoff(attempt)))


class WorkerRegistry:
    """Names to workers. Jobs whose worker is not registered are discarded with an error."""

    def __init__(self) -> None:
        self._workers: dict[str, Registered] = {}

    def register(
        self,
        name: str,
        fn: Worker,
        *,
        timeout_s: float | None = None,
        backoff: Backoff | None = None,
    ) -> Registered:
        if not name:
            raise ValueError("worker name must not be empty")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"worker {name!r}: timeout_s must be positive")
        registered = Registered(name, fn, timeout_s, backoff)
        self._workers[name] = registered
        return registered

    def get(self, name: str) -> Registered | None:
        return self._workers.get(name)

    def names(self) -> list[str]:
        return sorted(self._workers)

    def __contains__(self, name: object) -> bool:
        return name in self._workers

    def __len__(self) -> int:
        return len(self._workers)
