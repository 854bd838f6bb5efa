"""The last scheduler scans this process saw: rows scanned and enqueued, per trigger.

The scheduler emits `scheduler.run` (jobd.telemetry) for every tenant it scans; the
console keeps the newest per trigger worker name. A scan run by another node is not
seen here (the triggers page says "on this node"); when the run was, the cron ledger
and the scheduler's jobs show.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobd.telemetry import attach

HANDLER_ID = "jobd.console.scans"


@dataclass(frozen=True)
class Scan:
    at: datetime
    scanned: int
    enqueued: int
    duration_ms: float
    tenant: str | None


_last: dict[str, Scan] = {}


def _seen(name: str, measurements: Mapping[str, float], metadata: Mapping[str, Any]) -> None:
    trigger = metadata.get("trigger")
    if isinstance(trigger, str):
        _last[trigger] = Scan(
            at=datetime.now(UTC),
            scanned=int(measurements.get("scanned", 0)),
            enqueued=int(measurements.get("enqueued", 0)),
            duration_ms=float(measurements.get("duration_ms", 0.0)),
            tenant=metadata.get("tenant"),
        )


def attach_scans() -> None:
    """Start keeping scans (again: the handler is replaced, not added twice)."""
    attach(HANDLER_ID, _seen, events={"scheduler.run"})


def last_scan(worker_name: str) -> Scan | None:
    return _last.get(worker_name)
