"""A cluster of real `jobd run` processes for the promise tests: configuration, tables,
start and stop, and the checks every test shares.

    cluster = Cluster(database_url, tmp_path)
    await cluster.setup()                       # tables items, executions, overlaps
    node = await cluster.start(config_text)     # one more daemon, ready
    ...
    await cluster.close()                       # every daemon killed, connection closed
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from tests.faults.daemon import DaemonProc

TABLES = """
CREATE TABLE public.items (
  id int PRIMARY KEY, done boolean NOT NULL DEFAULT false, failed boolean NOT NULL DEFAULT false,
  kind text NOT NULL DEFAULT 'a'
);
CREATE TABLE public.executions (
  item_id int NOT NULL, job_id bigint NOT NULL, attempt int NOT NULL, node text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE public.overlaps (item_id int NOT NULL, job_id bigint NOT NULL);
"""

# One trigger per kind of item, all on the queue `work` unless a test says otherwise; the
# defaults a new user has (max_attempts 1, discard_cooldown 1h, lock_for_update).
HEADER = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "{admin}"}}
engine: {{heartbeat: 1s, poll_interval: 500ms, shutdown_grace: 5s}}
queues: {queues}
resources:
  items:
    table: public.items
    actions:
      work: {{python: "tests.faults.promise_actions:work"}}
      die: {{python: "tests.faults.promise_actions:die"}}
      mark_done: {{update: {{set: {{done: true}}}}}}
      mark_failed: {{update: {{set: {{failed: true}}}}}}
    triggers:
"""

TRIGGER = """      {name}:
        action: {action}
        where: "NOT done AND NOT failed AND kind = '{kind}'"
        scheduler_cron: false
        queue: {queue}
        on_success: mark_done
        on_error: mark_failed
        action_input: {{sleep_s: {sleep_s}, dsn: "{url}"}}
"""


def config(
    url: str,
    triggers: dict[str, dict[str, Any]],
    *,
    queues: str = "{work: 10}",
    admin: str = "off",
) -> str:
    """A configuration with `triggers` (name -> kind, queue, action, sleep_s)."""
    text = HEADER.format(url=url, queues=queues, admin=admin)
    for name, options in triggers.items():
        text += TRIGGER.format(
            name=name,
            url=url,
            action=options.get("action", "work"),
            kind=options.get("kind", "a"),
            queue=options.get("queue", "work"),
            sleep_s=options.get("sleep_s", 0.01),
        )
    return text


class Cluster:
    """Daemons on one database, each with its own config file and log in `tmp_path`."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.daemons: list[DaemonProc] = []
        self.started = 0
        self.conn: Any = None

    async def setup(self) -> None:
        self.conn = await asyncpg.connect(self.url)
        await self.conn.execute(TABLES)

    async def start(self, config_text: str, *, ready: bool = True) -> DaemonProc:
        n = self.started
        self.started += 1
        path = self.tmp_path / f"jobd{n}.yaml"
        path.write_text(config_text)
        daemon = await DaemonProc.start(path, self.tmp_path / f"daemon{n}.log")
        self.daemons.append(daemon)
        if ready:
            await daemon.ready()
        return daemon

    async def enqueue(self, trigger: str, first: int, last: int, kind: str = "a") -> int:
        """Insert items first..last of `kind` and enqueue `trigger` for them (SQL API)."""
        await self.conn.execute(
            "INSERT INTO public.items (id, kind)"
            " SELECT g, $3 FROM generate_series($1::int, $2::int) g",
            first,
            last,
            kind,
        )
        return int(
            await self.conn.fetchval(
                "SELECT cardinality(jobd.run_triggers('items', $3, (SELECT jsonb_agg("
                "jsonb_build_object('id', g)) FROM generate_series($1::int, $2::int) g)))",
                first,
                last,
                trigger,
            )
        )

    async def states(self) -> dict[str, int]:
        rows = await self.conn.fetch("SELECT state::text, count(*) FROM jobd.jobs GROUP BY 1")
        return {row[0]: int(row[1]) for row in rows}

    async def check_each_item_once(self, items: int) -> None:
        """Every item done, exactly one committed execution per item, no two executions of
        one item ever ran at the same time, no job discarded."""
        states = await self.states()
        assert "discarded" not in states and "executing" not in states, states
        assert await self.conn.fetchval("SELECT count(*) FROM public.items WHERE done") == items
        per_item = await self.conn.fetch(
            "SELECT item_id, count(*) FROM public.executions GROUP BY 1 HAVING count(*) > 1"
        )
        assert per_item == [], f"items whose work committed twice: {per_item[:5]}"
        assert await self.conn.fetchval("SELECT count(*) FROM public.executions") == items
        assert await self.conn.fetchval("SELECT count(*) FROM public.overlaps") == 0

    async def close(self) -> None:
        await asyncio.gather(*(d.kill() for d in self.daemons), return_exceptions=True)
        if self.conn is not None:
            await self.conn.close()
