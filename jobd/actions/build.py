"""Turn a configured action into a runnable one: `build_action(resource, action, services)`.

Every action is built once, when the daemon starts (so a bad entrypoint or `{sql}` value
stops the start with a clear error), and then run once per job attempt with an
`ActionContext`. The daemon-wide things actions share (the HTTP client, jobd's schema)
come in `ActionServices`.

Failures: see `jobd.actions.failures` (re-exported here) for how an action says that an
error is retryable, names its own wait (`RetryAfter`) or is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobd import model
from jobd.actions.base import Action
from jobd.actions.failures import (
    ActionFailure,
    PermanentFailure,
    RetryableFailure,
    RetryAfter,
    describe_error,
)
from jobd.errors import JobdError

if TYPE_CHECKING:
    from jobd.actions.http import HttpClient

__all__ = [
    "ActionFailure",
    "ActionServices",
    "Actions",
    "PermanentFailure",
    "RetryAfter",
    "RetryableFailure",
    "build_action",
    "describe_error",
]


@dataclass
class ActionServices:
    """What actions share across a daemon. `http` is required once an http action exists."""

    http: HttpClient | None = None
    schema: str = "jobd"


def build_action(
    resource: model.Resource, action: model.Action, services: ActionServices, *, jobs: int = 10
) -> Action:
    """The runnable action for `action` of `resource`; raises JobdError when it cannot be.
    `jobs`: how many of its calls may run at once (a synchronous python action gets as
    many threads)."""
    if action.kind == "update" and action.update is not None:
        from jobd.actions.update import UpdateAction

        return UpdateAction(action.name, resource, action.update)
    if action.kind == "python" and action.python is not None:
        from jobd.actions.python import PythonAction

        return PythonAction(action.name, action.python, threads=jobs)
    if action.kind == "http" and action.http is not None:
        from jobd.actions.http import HttpCallAction

        if services.http is None:
            raise JobdError(f"action {action.name!r} is an http action but no HTTP client runs")
        return HttpCallAction(action.name, resource.name, action.http, services.http)
    raise JobdError(f"action {action.name!r} of resource {resource.name!r} has no usable kind")


class Actions:
    """Every action of a configuration, built once: `actions.get(resource, name)`."""

    def __init__(self, spec: model.Spec, services: ActionServices) -> None:
        jobs = _concurrency(spec)
        self._built = {
            (resource.name, name): build_action(
                resource, action, services, jobs=max(1, jobs.get((resource.name, name), 1))
            )
            for resource in spec.resources.values()
            for name, action in resource.actions.items()
        }

    def get(self, resource: model.Resource, name: str) -> Action:
        return self._built[(resource.name, name)]


def _concurrency(spec: model.Spec) -> dict[tuple[str, str], int]:
    """How many calls of each action may run at once on a node: the limits of the queues
    whose jobs call it (as action, on_success or on_error), summed over its users."""
    limits: dict[tuple[str, str], int] = {}

    def add(resource: str, action: str | None, queue: str) -> None:
        if action is not None:
            key = (resource, action)
            limits[key] = limits.get(key, 0) + spec.queues[queue].limit

    for resource in spec.resources.values():
        for t in resource.triggers.values():
            for action in {t.action, t.on_success, t.on_error}:
                add(resource.name, action, t.queue)
        for s in resource.scheduled_actions.values():
            add(resource.name, s.action, s.queue)
    return limits
