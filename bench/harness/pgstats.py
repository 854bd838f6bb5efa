"""What the server says about a benchmark database, read from the admin database (so the
readings are not themselves counted in the bench database's statistics).

- `xacts`: `xact_commit + xact_rollback` of one database. A backend keeps its counters in
  its own memory and flushes them at most once a second when it goes idle; measured on
  this PostgreSQL 15, an idle backend's last transactions were still missing 70 s later,
  and appeared the moment it disconnected. So exact deltas are read with no backend of the
  database left (`wait_no_backends`), or are only as good as that lag allows.
- `ActivitySampler`: samples the database's client backends in `pg_stat_activity`:
  how many, how many `active`, `idle in transaction`, inside a transaction at all, and
  idle in a transaction that holds an xid (it wrote or locked rows: a row lock is held
  while the client does something else).
- `backend_cpu_s`: CPU seconds of the database's backends from /proc (same machine).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.harness.db import connect

HARNESS_APP = "jobd-bench"  # application_name of the harness's own connections
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FLUSH_SETTLE_S = 0.5  # a backend leaves pg_stat_activity just before it flushes its counters

ACTIVITY_SQL = """
SELECT state, xact_start IS NOT NULL AS in_xact, backend_xid IS NOT NULL AS has_xid
FROM pg_stat_activity
WHERE datname = $1 AND backend_type = 'client backend' AND application_name <> $2
"""


async def harness_connection(url: str) -> asyncpg.Connection:
    """A connection of the harness (named, so that no sample or CPU reading counts it)."""
    return await connect(url, server_settings={"application_name": HARNESS_APP})


async def xacts(admin: asyncpg.Connection, dbname: str) -> int:
    sql = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1"
    return int(await admin.fetchval(sql, dbname))


async def wait_no_backends(admin: asyncpg.Connection, dbname: str, timeout_s: float = 30) -> bool:
    """Until no backend (autovacuum's included) is connected to `dbname`, so that its
    counters are flushed; False if some still were after `timeout_s`."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while await admin.fetchval(sql, dbname):
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    await asyncio.sleep(FLUSH_SETTLE_S)
    return True


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None if it is gone or unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def backend_cpu_s(admin: asyncpg.Connection, dbname: str) -> dict[int, float]:
    """pid -> CPU seconds of the database's client backends (not the harness's)."""
    sql = (
        "SELECT pid FROM pg_stat_activity WHERE datname = $1"
        " AND backend_type = 'client backend' AND application_name <> $2"
    )
    pids = [r["pid"] for r in await admin.fetch(sql, dbname, HARNESS_APP)]
    cpu = {pid: proc_cpu_s(pid) for pid in pids}
    return {pid: s for pid, s in cpu.items() if s is not None}


def cpu_delta_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two `backend_cpu_s` readings (a backend new since: all of it)."""
    return sum(s - before.get(pid, 0.0) for pid, s in after.items())


@dataclass
class ActivitySampler:
    """Samples `pg_stat_activity` for one database every `interval_s` on its own
    connection (to the admin database) until `stop()`."""

    admin_url: str
    dbname: str
    interval_s: float = 0.05
    samples: int = 0
    peaks: dict[str, int] = field(default_factory=dict)
    sums: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await harness_connection(self.admin_url)
        self._task = asyncio.create_task(self._run(conn))

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            while True:
                rows = await conn.fetch(ACTIVITY_SQL, self.dbname, HARNESS_APP)
                self._add(rows)
                await asyncio.sleep(self.interval_s)
        finally:
            await conn.close()

    def _add(self, rows: list[Any]) -> None:
        now = {
            "backends": len(rows),
            "active": sum(r["state"] == "active" for r in rows),
            "idle_in_transaction": sum(r["state"] == "idle in transaction" for r in rows),
            "in_transaction": sum(bool(r["in_xact"]) for r in rows),
            "idle_in_transaction_holding_xid": sum(
                r["state"] == "idle in transaction" and bool(r["has_xid"]) for r in rows
            ),
        }
        self.samples += 1
        for key, value in now.items():
            self.peaks[key] = max(self.peaks.get(key, 0), value)
            self.sums[key] = self.sums.get(key, 0) + value

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "interval_s": self.interval_s,
            "peak": dict(self.peaks),
            "mean": {k: round(v / n, 2) for k, v in self.sums.items()},
        }
