"""The trigger benchmark's setting (bench/trigger_path.py): its variants, the daemon's
configuration, the table of rows, the harness's polling connection and the HTTP sink."""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.harness import runners
from bench.harness.db import connect
from bench.harness.pgstats import harness_connection

POLL_S = 0.02

CONFIG = """version: 1
database: {{url: "{url}"}}
log: {{level: warning, format: json}}
admin: {{listen: "127.0.0.1:{port}"}}
queues: {{items: {concurrency}, schedulers: 1}}
resources:
  items:
    table: public.items
    actions:
      act:
        {action}
      mark:
        update: {{set: {{processed: true{ref}}}}}
    triggers:
      process:
        action: act
        where: "processed IS NOT TRUE"
        scheduler_cron: false
        queue: items
        scheduler_queue: schedulers
        on_success: mark{options}
"""
PYTHON_ACTION = 'python: "bench.runners.actions:noop"'
HTTP_ACTION = 'http: {{url: "{sink}/{path}/{{record.id}}", timeout: 10s}}'


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "jobd" (trigger path), "pgqueuer", "engine" (jobd bare drain), "raw"
    part: str  # "python" or "http"
    trigger_once: bool = False
    in_transaction: bool = True

    @property
    def http(self) -> bool:
        return self.part == "http"


ON_SUCCESS = Variant("jobd trigger, on_success", "jobd", "python")
TRIGGER_ONCE = Variant("jobd trigger, trigger_once + on_success", "jobd", "python", True)
PGQUEUER = Variant("pgqueuer bare drain", "pgqueuer", "python")
ENGINE = Variant("jobd bare engine drain (reference)", "engine", "python")
HTTP_DEFAULT = Variant("jobd trigger + http", "jobd", "http")
HTTP_NO_TXN = Variant(
    "jobd trigger + http, action_in_transaction: false", "jobd", "http", in_transaction=False
)
RAW = Variant("raw aiohttp", "raw", "http")
VARIANTS = (ON_SUCCESS, TRIGGER_ONCE, PGQUEUER, ENGINE, HTTP_DEFAULT, HTTP_NO_TXN, RAW)


def config_text(v: Variant, url: str, port: int, concurrency: int, sink: str, path: str) -> str:
    options = ""
    if v.trigger_once:
        options += "\n        trigger_once: true"
    if not v.in_transaction:
        options += "\n        action_in_transaction: false"
    return CONFIG.format(
        url=url,
        port=port,
        concurrency=concurrency,
        action=HTTP_ACTION.format(sink=sink, path=path) if v.http else PYTHON_ACTION,
        ref=', remote_ref: {response: "ref"}' if v.http else "",
        options=options,
    )


def dbname_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def prepare(url: str, n: int) -> None:
    conn = await connect(url)
    try:
        await conn.execute(
            "CREATE TABLE public.items (id bigint PRIMARY KEY, payload text NOT NULL,"
            " processed boolean NOT NULL DEFAULT false, remote_ref text)"
        )
        await conn.execute(
            "INSERT INTO public.items (id, payload)"
            " SELECT g, md5(g::text) FROM generate_series(1, $1::int) g",
            n,
        )
        await conn.execute("ANALYZE public.items")
    finally:
        await conn.close()


class Poller:
    """The harness's connection to the bench database; counts its own transactions."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        # The server counts a transaction for the backend's start-up, then one per query.
        self.conn, self.queries = conn, 1

    @classmethod
    async def open(cls, url: str) -> Poller:
        return cls(await harness_connection(url))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.queries += 1  # one statement outside a transaction = one transaction
        return list(await self.conn.fetch(sql, *args))

    async def wait_marked(self, deadline: float) -> None:
        sql = "SELECT NOT EXISTS (SELECT 1 FROM public.items WHERE processed IS NOT TRUE)"
        while not (await self.fetch(sql))[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError("rows not all marked before --timeout-s")
            await asyncio.sleep(POLL_S)


def start_sink() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(runners.JOBD_PYTHON), "-m", "bench.runners.http_sink"],
        cwd=runners.ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def stop_sink(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
