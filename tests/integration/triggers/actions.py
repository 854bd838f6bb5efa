"""Python action entrypoints the trigger tests configure (`tests.integration.triggers.actions:...`).

Every call is recorded in `CALLS`; what an action does is steered by the job's input
(`action_input`): `fail` (always raise), `fail_until` (raise before that attempt),
`sleep_s`, `gate` (wait for `GATE` after setting `STARTED`), `write` (an UPDATE through
`ctx.conn`, to prove it commits or rolls back with the job), `fail_on` (row ids whose
attempt raises).
"""

from __future__ import annotations

import asyncio
from typing import Any

from jobd.actions.base import ActionContext
from jobd.actions.failures import PermanentFailure

CALLS: list[dict[str, Any]] = []
ERRORS: list[dict[str, Any]] = []
STARTED = asyncio.Event()
GATE = asyncio.Event()


def reset() -> None:
    CALLS.clear()
    ERRORS.clear()
    global STARTED, GATE
    STARTED = asyncio.Event()
    GATE = asyncio.Event()


async def record(ctx: ActionContext) -> dict[str, Any]:
    CALLS.append(
        {
            "pk": dict(ctx.primary_key or {}),
            "record": dict(ctx.record or {}),
            "tenant": ctx.tenant,
            "input": dict(ctx.input),
            "actor": ctx.actor,
            "attempt": ctx.job.attempt,
            "job_id": ctx.job.id,
            "args": ctx.job.args,
            "schedule": ctx.schedule,
            "trigger": ctx.trigger,
            "event": ctx.event,
        }
    )
    opts = ctx.input
    if opts.get("gate"):
        STARTED.set()
        await GATE.wait()
    if opts.get("sleep_s"):
        await asyncio.sleep(float(opts["sleep_s"]))
    if opts.get("write") and ctx.table_sql and ctx.primary_key:
        await ctx.conn.execute(
            f"UPDATE {ctx.table_sql} SET note = 'written' WHERE id = $1", ctx.primary_key["id"]
        )
    if opts.get("permanent"):
        raise PermanentFailure("gone for good", status=410, kind="http")
    row_id = (ctx.primary_key or {}).get("id")
    if opts.get("fail") or ctx.job.attempt < int(opts.get("fail_until", 0)):
        raise RuntimeError(f"boom on attempt {ctx.job.attempt}")
    if row_id in opts.get("fail_on", []):
        raise RuntimeError(f"boom on row {row_id}")
    return {"ok": True, "code": "R-1"}


def record_sync(ctx: ActionContext) -> None:
    """A sync entrypoint (run in a thread)."""
    CALLS.append({"pk": dict(ctx.primary_key or {}), "sync": True})


async def record_error(ctx: ActionContext) -> None:
    ERRORS.append({"error": dict(ctx.error or {}), "pk": dict(ctx.primary_key or {})})


async def failing_on_success(ctx: ActionContext) -> None:
    raise RuntimeError("on_success broke")


def tenants() -> list[str]:
    """A python list_tenants source (one name invalid, to be skipped)."""
    return ["acme", "globex", "bad name;"]
