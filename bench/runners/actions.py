"""Python actions of the trigger benchmarks, loaded by `jobd run` from its entrypoint
(`bench.runners.actions:noop`). Kept free of imports so that loading them costs nothing."""

from __future__ import annotations

from typing import Any


async def noop(ctx: Any) -> None:
    """The no-op action: the trigger path's own cost is what is measured."""
    return None
