"""Python action entrypoints of the edge-case fault tests (`tests.faults.edge_actions:...`),
run inside the real daemon process: user code that misbehaves the way issue 11 found.

- `boom_sync` / `boom_async`: raise a BaseException that is not an Exception, chosen by
  the row's `kind` column: `exit` (SystemExit), `interrupt` (KeyboardInterrupt) or
  `custom` (`Boom`, a direct subclass of BaseException).
- `hang_sync`: a synchronous action that never returns in time (sleeps 600 s).
- `quick_sync`: a synchronous action that returns at once.
- `slow`: sleeps `input.sleep_s` (default 2 s) on the loop, then returns.
- `fail`: raises RuntimeError at once (an action that always fails).
- `slow_on_error`: an on_error that takes `input.on_error_sleep_s` (default 2 s).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

HANG_S = 600.0


class Boom(BaseException):
    """User code's own BaseException subclass (not an Exception)."""


def _raise_for(record: dict[str, Any] | None) -> None:
    kind = (record or {}).get("kind")
    if kind == "exit":
        raise SystemExit(3)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "custom":
        raise Boom("custom base exception")
    raise AssertionError(f"unknown kind {kind!r}")


def boom_sync(ctx: Any) -> None:
    _raise_for(ctx.record)


async def boom_async(ctx: Any) -> None:
    await asyncio.sleep(0)
    _raise_for(ctx.record)


def hang_sync(ctx: Any) -> None:
    time.sleep(HANG_S)


def quick_sync(ctx: Any) -> dict[str, Any]:
    return {"id": (ctx.primary_key or {}).get("id")}


async def slow(ctx: Any) -> None:
    await asyncio.sleep(float(ctx.input.get("sleep_s", 2.0)))


async def fail(ctx: Any) -> None:
    raise RuntimeError("this action always fails")


async def slow_on_error(ctx: Any) -> None:
    await asyncio.sleep(float(ctx.input.get("on_error_sleep_s", 2.0)))
