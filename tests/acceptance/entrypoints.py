"""Python actions the daemon acceptance tests configure (`tests.acceptance.entrypoints:...`).

They run inside the real `jobd run` process (its working directory, the repository root,
is on `sys.path`), so they can only talk to the test through the database.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jobd.actions.base import ActionContext


async def nap(ctx: ActionContext) -> dict[str, Any]:
    """Sleep the row's `sleep_ms` (0 when absent), then report which row ran."""
    record = ctx.record or {}
    await asyncio.sleep((record.get("sleep_ms") or 0) / 1000)
    return {"id": record.get("id")}


async def note(ctx: ActionContext) -> None:
    """A scheduled action: write one line into `public.notes` in the job's transaction."""
    await ctx.conn.execute(
        "INSERT INTO public.notes (schedule, input) VALUES ($1, $2)",
        ctx.schedule,
        json.dumps(dict(ctx.input), sort_keys=True),
    )
