"""What the workers of triggers and schedules need, and nothing more: the pool, jobd's
schema, the tables and the actions (`Deps`; `TriggerRuntime` builds one and hands it to
each worker, tests and tools can build one directly), and the logger of an attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from jobd.actions.build import Actions
from jobd.engine.jobs import Job
from jobd.sql.driver import Pool
from jobd.triggers.tables import Tables


@dataclass(frozen=True, slots=True)
class Deps:
    pool: Pool
    schema: str
    tables: Tables
    actions: Actions


def attempt_logger(job: Job, resource: str, **what: str) -> Any:
    """The logger of one attempt, bound to its job, resource, tenant and `what` (the
    trigger or schedule): every line the attempt (and its action, `ctx.log`) writes says
    which job it is about."""
    return structlog.get_logger("jobd.triggers").bind(
        job_id=job.id,
        resource=resource,
        tenant=job.args.get("tenant"),
        attempt=job.attempt,
        **what,
    )
