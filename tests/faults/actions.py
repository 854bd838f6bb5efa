"""Python action entrypoints the fault tests configure (`tests.faults.actions:...`), run
inside the real daemon process.

`work` writes one row into `public.executions` through the job's own transaction (so a row
exists only for an attempt that completed) and sleeps `input.sleep_s` (default 10 ms)
first, so that a daemon always has jobs in flight when a fault hits.
"""

from __future__ import annotations

import asyncio

from jobd.actions.base import ActionContext

RECORD = "INSERT INTO public.executions (item_id, job_id, attempt, node) VALUES ($1, $2, $3, $4)"


async def work(ctx: ActionContext) -> None:
    await asyncio.sleep(float(ctx.input.get("sleep_s", 0.01)))
    assert ctx.primary_key is not None
    await ctx.conn.execute(
        RECORD, ctx.primary_key["id"], ctx.job.id, ctx.job.attempt, ctx.job.attempted_by
    )


async def tick(ctx: ActionContext) -> None:
    """A cron run: note which job ran on which node."""
    await ctx.conn.execute(
        "INSERT INTO public.ticks (job_id, node) VALUES ($1, $2)", ctx.job.id, ctx.job.attempted_by
    )
