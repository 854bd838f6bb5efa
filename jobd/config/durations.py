"""The configuration's durations: the parser lives in `jobd.common.durations`, shared with
the programmatic enqueues' `schedule_in` (jobd.client), which sit below the config layer."""

from __future__ import annotations

from jobd.common.durations import format_duration, parse_duration_s

__all__ = ["format_duration", "parse_duration_s"]
