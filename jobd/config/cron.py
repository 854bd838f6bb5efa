"""Checking cron expressions as the configuration writes them (SPEC 1.3); how they are
read is `jobd.common.cron`, shared with the engine's cron."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import CroniterError

from jobd.common.cron import NICKNAMES, cron_iter

_CHECK_FROM = datetime(2000, 1, 1, tzinfo=UTC)


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
