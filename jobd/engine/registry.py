"""Worker registry: a job's `worker` string names an async callable and its settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from jobd.engine.backoff import Backoff, oban_default
from jobd.engine.context import JobContext
from jobd.engine.jobs import Job

Worker = Callable[[Job, JobContext], Awaitable[object]]
# Ends a job whose failure is final before its worker runs (it was rescued too often):
# called instead of the worker, with the error; it ends the job itself (`ctx.complete_in`
# or `ctx.discard_in`, e.g. after a trigger's on_error) or raises, which discards it.
FinalFailure = Callable[[Job, JobContext, BaseException], Awaitable[object]]
# Runs the attempts of several claimed jobs of one worker at once (a trigger's batch: one
# transaction, one re-read, one completion). Returns one result per job, in order: None
# (done: ended by the worker through its ctx, or to be completed by the engine) or the
# exception the job's attempt ended with, which the engine reads as a single worker's.
BatchWorker = Callable[[Sequence[Job], Sequence[JobContext]], Awaitable[Sequence[Exception | None]]]


@dataclass(frozen=True, slots=True)
class Registered:
    """A worker with its per-attempt timeout (None = none), backoff (None = Oban's),
    final-failure handler (None: such a job is discarded) and batch form (None: one job
    per call; with one, the producer hands it the jobs of a fetch together)."""

    name: str
    fn: Worker
    timeout_s: float | None = None
    backoff: Backoff | None = None
    final_failure: FinalFailure | None = None
    batch: BatchWorker | None = None

    def backoff_s(self, attempt: int, max_attempts: int) -> float:
        """Seconds to wait before retrying after failed `attempt`."""
        if self.backoff is None:
            return oban_default(attempt, max_attempts)
        return max(0.0, float(self.backoff(attempt)))


class WorkerRegistry:
    """Names to workers. A node claims only the jobs of the workers it knows: jobs of
    other workers wait for a node that knows them."""

    def __init__(self) -> None:
        self._workers: dict[str, Registered] = {}

    def register(
        self,
        name: str,
        fn: Worker,
        *,
        timeout_s: float | None = None,
        backoff: Backoff | None = None,
        final_failure: FinalFailure | None = None,
        batch: BatchWorker | None = None,
    ) -> Registered:
        if not name:
            raise ValueError("worker name must not be empty")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"worker {name!r}: timeout_s must be positive")
        registered = Registered(name, fn, timeout_s, backoff, final_failure, batch)
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
