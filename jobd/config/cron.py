"""Cron expressions as the configuration writes them (SPEC 1.3).

Five fields (minute hour day month weekday), six with SECONDS FIRST, or a nickname
(@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly). croniter reads six
fields as seconds-first only with `second_at_beginning=True`; `cron_iter` is the one place
that says so, so schedulers and `jobd check` read an expression the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from croniter import CroniterError, croniter

NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)


def cron_iter(expression: str, start: datetime) -> Any:
    """A croniter over `expression` from `start` (aware datetimes in, aware out)."""
    fields = expression.split()
    text = expression.strip()
    return croniter(
        text.lower() if text.startswith("@") else text,
        start,
        ret_type=datetime,
        second_at_beginning=len(fields) == 6,
    )


def check_cron(expression: str) -> str | None:
    """A problem message for `expression`, or None when it is a valid cron expression."""
    shown = f'"{expression}"'
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in NICKNAMES:
            return f"{shown} is not a known cron nickname (use one of {', '.join(NICKNAMES)})"
        return None
    fields = text.split()
    if len(fields) not in (5, 6):
        return f"{shown} is not a valid cron expression (5 or 6 fields expected)"
    if any(field.upper().startswith("H") for field in fields):
        return f"{shown} is not a valid cron expression (hashed 'H' fields are not supported)"
    names = _FIELD_NAMES[6 - len(fields) :]
    for index, (field, name) in enumerate(zip(fields, names, strict=True)):
        alone = " ".join(field if i == index else "*" for i in range(len(fields)))
        if not _fires(alone):
            return f"{shown} is not a valid cron expression (bad {name} field '{field}')"
    if not _fires(text):
        return f"{shown} never fires (no date matches it)"
    return None


_FIELD_NAMES = ("seconds", "minute", "hour", "day-of-month", "month", "day-of-week")


def _fires(text: str) -> bool:
    """True when croniter accepts `text` and finds a next time for it."""
    try:
        cron_iter(text, _CHECK_FROM).get_next(datetime)
    except (CroniterError, ValueError, KeyError, IndexError, TypeError, OverflowError):
        return False
    return True
