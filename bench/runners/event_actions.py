"""The python action of the change-data events benchmark (`bench/events.py`), loaded by
`jobd run` as `bench.runners.event_actions:started`: it appends `<row id> <wall clock>` to
the file `$JOBD_BENCH_EVENTS_FILE` the moment the action starts, so the benchmark can set
each row's action start against its writer's commit (one machine, one clock). Stdlib only;
one buffered line per job, flushed at once."""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

_out: list[TextIO] = []


def _file() -> TextIO:
    if not _out:
        _out.append(open(os.environ["JOBD_BENCH_EVENTS_FILE"], "a", buffering=1))  # noqa: SIM115
    return _out[0]


async def started(ctx: Any) -> None:
    """Record when the action started for this row; nothing else."""
    _file().write(f"{ctx.record['id']} {time.time():.6f}\n")
