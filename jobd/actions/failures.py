"""How an action says *how* it failed, so the trigger worker knows what to do next.

Any exception an action raises is a failed attempt. These subclasses add what the worker
and the engine need beyond that, as plain attributes:

- `RetryableFailure`: retry with the trigger's backoff (timeouts, connection errors, a
  status in `retry_on`).
- `RetryAfter`: retryable, and the server named the wait (`Retry-After`): the next attempt
  should run after `retry_after_s` instead of the computed backoff. The attempt is still
  used up (a server that keeps answering 429 cannot keep a job alive forever).
- `PermanentFailure`: retrying cannot help (a 4xx outside `retry_on`): skip the remaining
  attempts and run `on_error` now.

Messages never contain actor values, URLs with their values, headers or secrets: they end
up in logs and in the job's recorded errors.
"""

from __future__ import annotations

from typing import Any

from jobd.errors import JobdError
from jobd.outcomes import failure_kind


class ActionFailure(JobdError):
    """An action failed. `kind` and `status` feed `{error: kind}` / `{error: status}`."""

    kind = "error"
    permanent = False
    retry_after_s: float | None = None

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None):
        super().__init__(message)
        self.status = status
        if kind is not None:
            self.kind = kind


class RetryableFailure(ActionFailure):
    """Worth another attempt, after the trigger's backoff."""


class RetryAfter(RetryableFailure):
    """Worth another attempt after `retry_after_s` seconds, as the server asked."""

    def __init__(
        self, message: str, retry_after_s: float, *, status: int | None = None, kind: str = "http"
    ) -> None:
        super().__init__(message, status=status, kind=kind)
        self.retry_after_s = max(0.0, float(retry_after_s))


class PermanentFailure(ActionFailure):
    """No further attempt can succeed: the worker skips the remaining ones and runs on_error."""

    permanent = True


def describe_error(exc: BaseException, attempt: int) -> dict[str, Any]:
    """The `{error: ...}` fields an on_error action sees: message, kind, status, attempt."""
    if isinstance(exc, ActionFailure):
        return {"message": str(exc), "kind": exc.kind, "status": exc.status, "attempt": attempt}
    kind = failure_kind(exc)  # others may name theirs too (RescuedTooOften: "rescued")
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return {"message": message, "kind": kind, "status": None, "attempt": attempt}
