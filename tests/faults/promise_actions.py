"""Python actions the promise tests (`tests/faults/test_promise_*.py`) configure, run
inside real `jobd run` processes.

`work` records one execution of its item in `public.executions` through the job's own
transaction (a row exists only for an attempt that committed), after `input.sleep_s`. It
also holds a transaction-level advisory lock on its item while it runs: if that lock is
already taken, another attempt of the same item runs at this very moment, and that fact is
recorded in `public.overlaps` on a connection of its own to `input.dsn` (so it survives
the rollback).
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
    alone = await ctx.conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", OVERLAP_LOCK, item)
    if not alone:
        await _record_overlap(ctx, item)
    await asyncio.sleep(float(ctx.input.get("sleep_s", 0.01)))
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
