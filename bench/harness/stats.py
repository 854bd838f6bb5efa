"""Summaries of repeated measurements."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of `values` (rounded to 0.1)."""
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
    }


def ratio(value: float, reference: float) -> float | None:
    """value / reference, or None when there is no reference."""
    return round(value / reference, 2) if reference else None
