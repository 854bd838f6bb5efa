"""Retry delays: Oban's default formula and the configurable ones of SPEC 1.2.

A backoff is a function of the attempt that just failed (1-based) returning seconds.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Backoff = Callable[[int], float]

# Oban clamps attempts of jobs with many attempts onto this scale.
OBAN_CLAMPED_MAX = 20
OBAN_MIN_PAD_S = 15
OBAN_JITTER = 0.1


def oban_default(attempt: int, max_attempts: int) -> float:
    """Oban's `Worker.backoff/1`: 15 + 2^attempt seconds, the attempt clamped onto 1..20
    proportionally when max_attempts > 20, plus up to 10% upward jitter."""
    if max_attempts <= OBAN_CLAMPED_MAX:
        clamped = attempt
    else:
        clamped = round(attempt / max_attempts * OBAN_CLAMPED_MAX)
    base = OBAN_MIN_PAD_S + 2 ** min(clamped, 100)
    return float(base + int(random.random() * OBAN_JITTER * base))  # noqa: S311


def fixed(delay_s: float) -> Backoff:
    """The same delay after every failed attempt (`backoff: {fixed: 30s}`)."""

    def backoff(attempt: int) -> float:
        return delay_s

    return backoff


def exponential(
    *, min_s: float = 1.0, max_s: float = 3600.0, jitter: float = 0.1, factor: float = 2.0
) -> Backoff:
    """min_s * factor^(attempt-1), capped at max_s, +/- `jitter` as a fraction
    (`backoff: {exponential: {min: 1s, max: 1h, jitter: 0.1}}`)."""

    def backoff(attempt: int) -> float:
        base = min(max_s, min_s * factor ** min(max(attempt - 1, 0), 64))
        spread = base * jitter * (2 * random.random() - 1)  # noqa: S311
        return max(0.0, min(max_s, base + spread))

    return backoff
