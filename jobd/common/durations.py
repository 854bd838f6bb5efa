"""Durations as the configuration writes them, and the `schedule_in` of programmatic
enqueues (jobd.client): `250ms`, `10s`, `5m`, `2h`, `7d`, or seconds.

The JSON Schema's `duration` pattern accepts exactly what `parse_duration_s` parses; a unit
test keeps the two in step.
"""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration_s(value: str | float) -> float:
    """Seconds in a duration; raises ValueError for anything the schema would reject."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a duration: {value!r}")
        return float(value)
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest config spelling of a number of seconds (for messages and docs)."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _UNIT_S[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds}s"
