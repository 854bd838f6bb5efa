"""The real daemon (`python -m jobd run`) as a child process, for the fault tests.

    proc = await DaemonProc.start(config_path, log_path)
    await proc.ready()                      # waits for the `daemon.ready` log line
    proc.send(signal.SIGHUP); await proc.wait_event("daemon.reloaded")
    assert await proc.stop() == 0           # SIGTERM, then the exit code

The daemon logs JSON lines to stderr; a reader task keeps the pipe drained (a full pipe
would block the daemon), copies every line to `log_path` and keeps the parsed events, so
tests wait on a log line, never on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# A trigger on public.items: every row not yet done gets a job; the Python action records
# its execution in the job's transaction and on_success marks the row done in that same
# transaction. No scheduler: the tests enqueue with jobd.run_triggers().
ITEMS_CONFIG = """
version: 1
database: {{url: "{url}", pool_size: 8}}
log: {{format: json, level: info}}
admin: {{listen: "{admin}"}}
engine: {{heartbeat: {heartbeat}, poll_interval: 500ms, shutdown_grace: {grace}}}
queues: {{items: {limit}}}
resources:
  items:
    table: public.items
    actions:
      work: {{python: "tests.faults.actions:work"}}
      mark_done: {{update: {{set: {{done: true}}}}}}
    triggers:
      process:
        action: work
        where: "done IS NOT TRUE"
        scheduler_cron: false
        queue: items
        max_attempts: {max_attempts}
        on_success: mark_done
        action_input: {{sleep_s: {sleep_s}}}
"""

ITEMS_SQL = """
CREATE TABLE public.items (id int PRIMARY KEY, done boolean NOT NULL DEFAULT false);
CREATE TABLE public.executions (
  item_id int NOT NULL, job_id bigint NOT NULL, attempt int NOT NULL, node text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

ENQUEUE = (
    "SELECT cardinality(jobd.run_triggers('items', 'process', "
    "(SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series($1::int, $2::int) g)))"
)


def items_config(
    url: str,
    *,
    heartbeat: str = "1s",
    grace: str = "10s",
    limit: int = 10,
    sleep_s: float = 0.01,
    admin: str = "off",
    max_attempts: int = 5,
) -> str:
    return ITEMS_CONFIG.format(
        url=url,
        heartbeat=heartbeat,
        grace=grace,
        limit=limit,
        sleep_s=sleep_s,
        admin=admin,
        max_attempts=max_attempts,
    )


async def add_items(conn: Any, first: int, last: int) -> int:
    """Insert items first..last and enqueue their jobs; returns jobs enqueued."""
    await conn.execute(
        "INSERT INTO public.items (id) SELECT generate_series($1::int, $2::int)", first, last
    )
    return int(await conn.fetchval(ENQUEUE, first, last))


class DaemonProc:
    """One `jobd run` process and the events it logged."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.events: list[dict[str, Any]] = []
        self.node_id = ""
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name="fault-test:daemon-log")

    @classmethod
    async def start(cls, config: Path, log_path: Path) -> DaemonProc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobd",
            "run",
            "-c",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc, log_path)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.log_path.open("ab") as out:
            async for line in self.proc.stderr:
                out.write(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "<text>", "text": line.decode(errors="replace")}
                if isinstance(event, dict):
                    self.events.append(event)
                    self._changed.set()
        self._changed.set()

    def find(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    async def wait_event(
        self, name: str, timeout_s: float = 20.0, after: int = 0
    ) -> dict[str, Any]:
        """The first event `name` logged at index >= `after`; fails on timeout or exit."""
        deadline = time.monotonic() + timeout_s
        while True:
            for event in self.events[after:]:
                if event.get("event") == name:
                    return event
            if self._reader.done():
                raise AssertionError(f"daemon exited before {name!r}; see {self.log_path}")
            left = deadline - time.monotonic()
            assert left > 0, f"no {name!r} within {timeout_s} s; see {self.log_path}"
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))

    async def ready(self, timeout_s: float = 30.0) -> None:
        event = await self.wait_event("daemon.ready", timeout_s)
        self.node_id = str(event["node_id"])

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def wait(self, timeout_s: float = 30.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout=timeout_s)
        await asyncio.wait_for(self._reader, timeout=5)
        return code

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and the exit code."""
        if self.alive:
            self.send(signal.SIGTERM)
        return await self.wait(timeout_s)

    async def kill(self) -> None:
        if self.alive:
            self.proc.kill()
        await self.wait()


async def poll(check: Any, timeout_s: float, what: str) -> None:
    """Await `check()` until true, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.05)
