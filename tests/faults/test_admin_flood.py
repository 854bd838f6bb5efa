"""Issue 11, case 8: half-open connections to the admin listener, against the real daemon
at systemd's default open-files limit (1024). The listener is bounded
(jobd.admin.bounds): at most 256 connections, a request head within 10 s; so the clients
cannot take the file descriptors the engine needs for its database and HTTP connections."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.faults.daemon import DaemonProc
from tests.faults.edge_daemon import jobd_code, settle, start_daemon, states
from tests.faults.inprocess import http_sink
from tests.faults.throwaway_pg import free_port

pytestmark = pytest.mark.faults

OPEN_FILES = 1024  # systemd's default LimitNOFILE soft limit
HALF_OPEN = 1_100
JOBS = 300
HEAD_DEADLINE_S = 10.0  # jobd.admin.bounds.HEAD_TIMEOUT_S
HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the head's blank line never comes

# Defaults (max_attempts 1, implicit queue of 10, the HTTP action's defaults); the admin
# listener on a loopback port, the scheduler off so the test enqueues what it counts.
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
resources:
  items:
    table: public.items
    actions:
      call: {{http: {{url: "{sink}/items/{{record.id}}"}}}}
    triggers:
      call: {{action: call, scheduler_cron: false}}
"""

ENQUEUE = (
    f"INSERT INTO public.items (id) SELECT generate_series(1, {JOBS});"
    " SELECT jobd.run_triggers('items', 'call',"
    f" (SELECT jsonb_agg(jsonb_build_object('id', g)) FROM generate_series(1, {JOBS}) g))"
)


class HalfOpen:
    """Connections that send a request head without its end and then wait."""

    def __init__(self) -> None:
        self.conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.failed = 0  # connect refused or timed out

    async def open(self, port: int, count: int) -> None:
        gate = asyncio.Semaphore(200)

        async def one() -> None:
            async with gate:
                try:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port), timeout=2
                    )
                except (OSError, TimeoutError):
                    self.failed += 1
                    return
                with contextlib.suppress(OSError):
                    writer.write(HALF_SENT)
                self.conns.append((reader, writer))

        await asyncio.gather(*(one() for _ in range(count)))

    def closed_by_server(self) -> int:
        """Connections the server closed: EOF, or a reset (a connection closed before the
        server read what the client sent ends with RST)."""
        return sum(1 for reader, _ in self.conns if reader.at_eof() or reader.exception())

    def close(self) -> None:
        for _, writer in self.conns:
            writer.transport.abort()


async def healthz(port: int) -> str:
    """`GET /healthz` on a new connection: its status, or how it failed."""
    try:
        timeout = aiohttp.ClientTimeout(total=3)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            return str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


async def test_half_open_admin_connections_take_no_sockets_from_the_engine(
    database_url: str, tmp_path: Path
) -> None:
    """A daemon limited to 1024 open files gets 1,100 connections to its admin listener
    that send `GET /healthz` without finishing the head, then drains 300 jobs of an HTTP
    action (each a new request to a loopback sink). The listener keeps at most 256 of them
    (each new one takes the place of the oldest silent one, `admin.connection_evicted`
    logged), so a new `/healthz` still answers 200 during the flood; every job completes
    (none discarded for want of a socket); the held connections are closed by the server
    at the head deadline (10 s, within 10-14 s of opening); `/healthz` then answers 200;
    SIGTERM exits 0."""
    hits: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        hits.append(request.path)
        await asyncio.sleep(0.01)
        return web.json_response({"ok": True})

    port = free_port()
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    flood = HalfOpen()
    try:
        await conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
        async with http_sink(sink) as sink_url:
            config = tmp_path / "jobd.yaml"
            config.write_text(CONFIG.format(url=database_url, port=port, sink=sink_url))
            daemon = await start_daemon(config, tmp_path / "daemon.log", open_files=OPEN_FILES)
            print(f"\njobd code: {await jobd_code(daemon)}")
            await daemon.ready()
            assert await healthz(port) == "200"

            opened = time.monotonic()
            await flood.open(port, HALF_OPEN)
            open_s = time.monotonic() - opened
            await asyncio.sleep(0.5)  # bounded: let the server close what it refuses
            refused = flood.closed_by_server()
            held = len(flood.conns) - refused
            during = await healthz(port)
            print(
                f"{HALF_OPEN} half-open connections in {open_s:.2f} s: {held} held,"
                f" {refused} closed at once by the server, {flood.failed} not connected;"
                f" a new /healthz meanwhile: {during}"
            )

            enqueued = time.monotonic()
            await conn.execute(ENQUEUE)

            async def drained() -> bool:
                left = await conn.fetchval(
                    "SELECT count(*) FROM jobd.jobs WHERE worker = 'items.call'"
                    " AND state NOT IN ('completed', 'discarded', 'cancelled')"
                )
                return int(left) == 0 or not daemon.alive

            ended = await settle(drained, 20)
            drain_s = time.monotonic() - enqueued
            job_states = await states(conn, "items.call")
            still_held = len(flood.conns) - flood.closed_by_server()
            print(
                f"{JOBS} jobs ended in {drain_s:.2f} s: {job_states};"
                f" sink requests: {len(hits)} ({len(set(hits))} distinct);"
                f" half-open connections still held then: {still_held}"
            )
            assert ended, f"jobs still waiting after 20 s: {job_states}"
            assert job_states == {"completed": JOBS}, job_states
            assert len(set(hits)) == JOBS

            async def all_closed() -> bool:
                return flood.closed_by_server() == len(flood.conns)

            assert await settle(all_closed, HEAD_DEADLINE_S + 4 - (time.monotonic() - opened))
            closed_s = time.monotonic() - opened
            after = await healthz(port)
            evictions = daemon.find("admin.connection_evicted")
            print(
                f"every held connection closed by the server {closed_s:.2f} s after opening;"
                f" /healthz then: {after}; admin.connection_evicted lines: {len(evictions)}"
                f" (last count {evictions[-1]['evicted'] if evictions else 0})"
            )
            assert held <= 256
            assert during == "200", "a flood of silent connections kept /healthz out"
            assert evictions, "no admin.connection_evicted line"
            assert closed_s >= HEAD_DEADLINE_S - 0.5
            assert after == "200"
            assert daemon.alive
            assert await daemon.stop() == 0
    finally:
        flood.close()
        if daemon is not None:
            await daemon.kill()
        await conn.close()
