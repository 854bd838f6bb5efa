"""What the engine needs to run, in its own terms (it never sees the YAML model).

The daemon maps the configuration model onto these; tests build them directly.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from jobd.engine.jobs import JobSpec

DAY_S = 86_400.0
# Pool connections kept for the engine's own work (the acker, the producers' fetches, the
# leader's services, the admin API) beyond what the queues' jobs may hold at once.
POOL_RESERVE = 5
DEFAULT_RETENTION_S: Mapping[str, float] = MappingProxyType(
    {"completed": DAY_S, "cancelled": 7 * DAY_S, "discarded": 30 * DAY_S}
)


@dataclass(frozen=True)
class QueueConfig:
    """A queue as configured: `limit` jobs at once per node, `global_limit` across nodes."""

    name: str
    limit: int = 10
    global_limit: int | None = None


@dataclass(frozen=True)
class CronEntry:
    """A job inserted on every tick of `expression` (5 fields, or 6 with seconds first)."""

    name: str
    expression: str
    job: JobSpec
    timezone: str = "UTC"
    overlap: Literal["skip", "allow"] = "skip"
    catch_up: Literal["none", "latest", "all"] = "none"
    catch_up_window_s: float = 3600.0


@dataclass(frozen=True)
class EngineConfig:
    schema: str = "jobd"
    node_name: str = ""  # display name; the node id is made unique per process
    queues: tuple[QueueConfig, ...] = (QueueConfig("default"),)
    poll_interval_s: float = 1.0
    shutdown_grace_s: float = 15.0
    heartbeat_s: float = 5.0
    lease_s: float = 15.0  # leader lease; renewed every lease_s / 2
    max_rescues: int = 3  # a job rescued more often is a final failure (it kills its node)
    stage_interval_s: float = 1.0
    prune_interval_s: float = 60.0
    prune_batch: int = 10_000
    retention_s: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RETENTION_S)
    crons: tuple[CronEntry, ...] = ()


def new_node_id(name: str = "") -> str:
    """A node id unique per process: display name (or host), pid and a random suffix."""
    base = name or socket.gethostname() or "jobd"
    return f"{base}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
