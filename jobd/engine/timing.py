"""The two timing helpers every engine loop uses: every timer has jitter (`jittered`), and
every wait can be interrupted by shutdown (`sleep_or_stop`)."""

from __future__ import annotations

import asyncio
import contextlib
import random


def jittered(interval_s: float, spread: float = 0.1) -> float:
    """`interval_s` shortened by up to `spread` (a fraction), so timers never align."""
    return interval_s * (1.0 - random.uniform(0.0, spread))  # noqa: S311 (not crypto)


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Sleep `delay_s` or until `stop` is set; True when stopped."""
    if stop.is_set():
        return True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(delay_s, 0.0))
    return stop.is_set()
