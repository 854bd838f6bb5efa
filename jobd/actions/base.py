"""The one Protocol every action implements, and the context it is called with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobd.outcomes import JobView
from jobd.sql.driver import Connection


@dataclass(slots=True)
class ActionContext:
    """Everything an action may use, for one attempt of one job.

    Python entrypoints receive it as their only argument (`jobd.ActionContext`). `conn` is
    the database connection of the job's transaction: writes made through it commit together
    with the job's completion, or not at all.
    """

    job: JobView
    resource: str
    conn: Connection  # inside the job's transaction
    log: Any  # a structlog logger bound with job_id, resource, trigger/schedule
    trigger: str | None = None
    schedule: str | None = None
    record: Mapping[str, Any] | None = None  # the row as re-read by the worker (triggers)
    primary_key: Mapping[str, Any] | None = None  # column -> value
    actor: Mapping[str, Any] | None = None  # the actor as looked up for this attempt
    tenant: str | None = None
    input: Mapping[str, Any] = field(default_factory=dict)
    # Set for follow-up actions: the final error (on_error) or the main action's result
    # (on_success; for HTTP actions the parsed response).
    error: Mapping[str, Any] | None = None
    response: Any = None
    # The quoted, tenant-resolved table this job's row lives in (for update actions).
    table_sql: str | None = None
    # The change that enqueued the job (a trigger's `events:`): "insert", "update" or
    # "delete" (then `record` is the deleted row, as it was); None for jobs of the
    # scheduler's scan and of programmatic runs.
    event: str | None = None


class Action(Protocol):
    """An action: run it for one job attempt; return a result (or None), or raise.

    Raising `jobd.Snooze`, `jobd.Cancel` or `jobd.Discard` ends the attempt as they say; any
    other exception is a failure that the trigger's retry policy handles.
    """

    name: str

    async def run(self, ctx: ActionContext) -> Any: ...
