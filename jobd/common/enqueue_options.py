"""The options of a programmatic enqueue (issue 15), checked once for every interface:
`input` (a JSON object merged over the configured action_input), a time (`schedule_in`, a
duration, or `scheduled_at`, a timestamp with a timezone) and `priority` (0-9).

`jobd.Client` checks them here before it calls the SQL functions, which check them again
(SQL callers come straight to them) and alone decide whether `scheduled_at` is past, by
the database's clock. The CLI and the admin API hand their raw values (a duration text,
an ISO 8601 text) to the client, so every interface gives the same message for one
mistake: a `UsageError` (CLI exit 2, API 400).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jobd.common.durations import parse_duration_s
from jobd.common.jsontext import json_text_or_none
from jobd.errors import UsageError

PRIORITY_MIN, PRIORITY_MAX = 0, 9

DURATION_FORMS = "e.g. 30s, 10m, 2h, 7d, 250ms, or a number of seconds"
TIMESTAMP_FORMS = "ISO 8601 with a timezone, e.g. 2026-12-24T18:00:00Z or 2026-12-24 19:00+01:00"


@dataclass(frozen=True)
class EnqueueOptions:
    """The options as the SQL functions take them (client_run_* queries' parameters)."""

    input_json: str | None = None  # JSON text of the input object
    schedule_in_s: float | None = None
    scheduled_at_iso: str | None = None  # ISO 8601 with an offset
    priority: int | None = None

    @property
    def given(self) -> bool:
        return any(
            v is not None
            for v in (self.input_json, self.schedule_in_s, self.scheduled_at_iso, self.priority)
        )

    def params(self) -> tuple[str | None, float | None, str | None, int | None]:
        return (self.input_json, self.schedule_in_s, self.scheduled_at_iso, self.priority)


def schedule_in_seconds(value: str | float | timedelta) -> float:
    """Seconds in a `schedule_in`: a duration as the configuration writes it, a number of
    seconds, or a timedelta; UsageError for anything else or a negative one."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            seconds = parse_duration_s(value.strip() if isinstance(value, str) else value)
        except ValueError:
            raise UsageError(
                f"schedule_in {value!r} is not a duration ({DURATION_FORMS})"
            ) from None
    else:
        raise UsageError(f"schedule_in must be a duration ({DURATION_FORMS}), got {value!r}")
    if seconds < 0 or not math.isfinite(seconds):
        raise UsageError(f"schedule_in must not be negative, got {value!r}")
    return seconds


def scheduled_at_iso(value: datetime | str) -> str:
    """`scheduled_at` as ISO 8601 text with its offset; UsageError when it is no timestamp
    or has no timezone (which would leave the time to the database session's zone)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise UsageError(
                f"scheduled_at {value!r} is not a timestamp ({TIMESTAMP_FORMS})"
            ) from None
    if not isinstance(value, datetime):
        raise UsageError(f"scheduled_at must be a timestamp ({TIMESTAMP_FORMS}), got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"scheduled_at {value.isoformat()!r} has no timezone ({TIMESTAMP_FORMS})")
    return value.isoformat()


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"priority must be an integer from 0 (highest) to 9, got {value!r}")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise UsageError(f"priority must be 0 (highest) to 9, got {value}")
    return value


def enqueue_options(
    input: Mapping[str, Any] | None = None,
    schedule_in: str | float | timedelta | None = None,
    scheduled_at: datetime | str | None = None,
    priority: int | None = None,
) -> EnqueueOptions:
    """The checked options (UsageError names what is wrong and what is accepted)."""
    if input is not None and not isinstance(input, Mapping):
        raise UsageError(f"input must be a JSON object, got {type(input).__name__}")
    if schedule_in is not None and scheduled_at is not None:
        raise UsageError("give schedule_in or scheduled_at, not both")
    return EnqueueOptions(
        input_json=json_text_or_none(None if input is None else dict(input)),
        schedule_in_s=None if schedule_in is None else schedule_in_seconds(schedule_in),
        scheduled_at_iso=None if scheduled_at is None else scheduled_at_iso(scheduled_at),
        priority=None if priority is None else check_priority(priority),
    )
