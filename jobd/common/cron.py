"""Cron expressions, read one way by everyone (`jobd check` and the engine's cron).

Five fields (minute hour day month weekday), six with SECONDS FIRST, or a nickname
(@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, in any case). croniter
reads six fields as seconds-first only with `second_at_beginning=True`, and nicknames only
in lower case; `cron_iter` is the one place that says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def cron_iter(expression: str, start: datetime, timezone: str | None = None) -> Any:
    """A croniter over `expression` from `start` (aware), in `timezone` when given (ticks
    then come as aware datetimes of that zone, DST-correct)."""
    text = expression.strip()
    if timezone is not None:
        start = start.astimezone(ZoneInfo(timezone))
    return croniter(
        text.lower() if text.startswith("@") else text,
        start,
        ret_type=datetime,
        second_at_beginning=len(text.split()) == 6,
    )
