"""Python actions the promise tests (`tests/faults/test_promise_*.py`) configure, run
inside real `jobd run` processes.

`work` sleeps `input.sleep_s`, then records one execution of its item in
`public.executions` through the job's own transaction (a row exists only for an attempt
that committed). It then holds a transaction-level advisory lock on its item until its
transaction ends: if that lock is already taken, another attempt of the same item is
committing at this very moment, and that fact is recorded in `public.overlaps` on a
connection of its own to `input.dsn` (so it survives the rollback); two attempts that
both commit show as two executions.
`die` kills its own process with SIGKILL: a job that keeps killing its node.
"""

from __future__ import annotations

import asyncio
import os
import signal

import asyncpg

from jobd.actions.base import ActionContext

RECORD = "INSERT INTO public.executions (item_id, job_id, attempt, node) VALUES ($1, $2, $3, $4)"
OVERLAP_LOCK = 0x70726F6D  # "prom": the advisory lock namespace of an item's execution


async def work(ctx: ActionContext) -> None:
    assert ctx.primary_key is not None
    item = int(ctx.primary_key["id"])
    # The action's own work first, then its writes: in a batch, a job that uses ctx.conn
    # holds the batch's connection from its first statement to its end (docs/semantics.md).
    await asyncio.sleep(float(ctx.input.get("sleep_s", 0.01)))
    alone = await ctx.conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", OVERLAP_LOCK, item)
    if not alone:
        await _record_overlap(ctx, item)
    node = ctx.job.attempted_by  # type: ignore[attr-defined]
    await ctx.conn.execute(RECORD, item, ctx.job.id, ctx.job.attempt, node)


async def _record_overlap(ctx: ActionContext, item: int) -> None:
    conn = await asyncpg.connect(str(ctx.input["dsn"]))
    try:
        await conn.execute(
            "INSERT INTO public.overlaps (item_id, job_id) VALUES ($1, $2)", item, ctx.job.id
        )
    finally:
        await conn.close()


async def die(ctx: ActionContext) -> None:
    os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(60)  # never reached
