"""Hostile input against a real daemon (SPEC section 3: bad input gets a clear message,
never a traceback; 1.4/1.5/1.7: runtime values are bind parameters, URL values stay in
their path segment, tenant names are validated): bad and oversized admin API bodies,
SQL-looking primary keys and tenant names through the API, the CLI and the SQL function,
and primary keys that try to escape their URL segment. Nothing executes; tables survive."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.faults.daemon import ROOT, DaemonProc, poll
from tests.faults.inprocess import http_sink
from tests.faults.throwaway_pg import free_port

pytestmark = pytest.mark.faults

EVIL_TENANT = 'acme"; DROP SCHEMA public; --'
# Rows that exist, with keys that look like SQL or like a way out of a URL segment.
DOC_IDS = ["1; DROP TABLE x", "' OR '1'='1", "../admin?x=1#", "..", "a/b%2F..%2Fc"]

CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
engine: {{heartbeat: 1s, poll_interval: 200ms, shutdown_grace: 2s}}
queues: {{default: 5}}
resources:
  docs:
    table: public.docs
    actions:
      call: {{http: {{url: "{sink}/docs/{{record.id}}", timeout: 5s}}}}
    triggers:
      process: {{action: call, scheduler_cron: false, queue: default}}
  notes:
    table: notes
    multitenancy: {{strategy: schema}}
    list_tenants: [acme]
    actions:
      call: {{http: {{url: "{sink}/notes/{{tenant}}/{{record.id}}", timeout: 5s}}}}
    triggers:
      process: {{action: call, scheduler_cron: false, queue: default}}
"""

SETUP = """
CREATE TABLE public.x (id int);
INSERT INTO public.x VALUES (1);
CREATE TABLE public.docs (id text PRIMARY KEY);
CREATE SCHEMA acme;
CREATE TABLE acme.notes (id int PRIMARY KEY);
INSERT INTO acme.notes VALUES (1);
"""

# (body, status): bodies the API must refuse with a 4xx JSON error.
BAD_BODIES: list[tuple[bytes, int]] = [
    (b"{not json", 400),
    (b"\xff\xfe\x00garbage", 400),
    (b"[1, 2]", 400),
    (b'"just a string"', 400),
    (b'{"primary_key": "1; DROP TABLE x"}', 400),
    (b'{"primary_key": {"id": "1"}, "primary_keys": []}', 400),
    (b'{"primary_keys": "x"}', 400),
    (b'{"primary_keys": [1, 2]}', 400),
    (b'{"actor": "admin"}', 400),
    (b'{"tenant": 7}', 400),
    (b'{"evil": 1}', 400),
    (b"[" * 100_000, 400),  # nesting deeper than any parser's recursion limit
    (b'{"primary_key": {"id": "' + b"x" * (2 << 20) + b'"}}', 413),
]


class Sink:
    def __init__(self) -> None:
        self.raw_paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.raw_paths.append(request.raw_path)
        return web.json_response({"ok": True})


async def cli(config: Path, *args: str) -> tuple[int, str]:
    """`jobd trigger ...` as a process (awaited: the sink runs in this loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobd",
        "trigger",
        *args,
        "-c",
        str(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def assert_clear_error(status: int, expected: int, text: str, what: object) -> None:
    assert status == expected, (what, status, text[:300])
    body = json.loads(text)
    assert isinstance(body.get("error"), str) and body["error"], (what, body)
    assert "Traceback" not in text, (what, text[:300])


async def test_hostile_input(database_url: str, tmp_path: Path) -> None:
    """Bad bodies get 400 (413 when oversized) JSON errors; SQL-looking keys enqueue a job
    for exactly the row with that literal key (or a 404 when none has it), through the API,
    the CLI and jobd.run_trigger; the evil tenant is refused by all three; each key reaches
    the sink percent-encoded inside its one path segment; every table and schema survives
    and the daemon keeps running."""
    sink = Sink()
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(SETUP)
        await conn.executemany("INSERT INTO public.docs VALUES ($1)", [(i,) for i in DOC_IDS])
        async with http_sink(sink.handle) as sink_url:
            config = tmp_path / "jobd.yaml"
            config.write_text(CONFIG.format(url=database_url, sink=sink_url, port=free_port()))
            daemon = await DaemonProc.start(config, tmp_path / "daemon.log")
            await daemon.ready()
            port = (await daemon.wait_event("admin.listening"))["port"]
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                await api_checks(http)
            await cli_checks(config)
            await sql_checks(conn)
            await poll(lambda: _all_done(conn), 30, "every enqueued job completed")
            assert daemon.alive
            assert await daemon.stop() == 0
        await check_survivors(conn, sink)
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()


async def post(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    async with http.post(path, data=io.BytesIO(raw), headers=headers) as r:
        return r.status, await r.text()


async def api_checks(http: aiohttp.ClientSession) -> None:
    run = "/api/triggers/docs/process/run"
    for body, expected in BAD_BODIES:
        status, text = await post(http, run, body)
        assert_clear_error(status, expected, text, body[:60])
    for doc_id in DOC_IDS[:2]:  # SQL-looking keys of rows that exist: one job, that row
        status, text = await post(http, run, {"primary_key": {"id": doc_id}})
        assert status == 200 and json.loads(text)["enqueued"], (doc_id, text)
    status, text = await post(http, run, {"primary_key": {"id": "' OR 1=1 --"}})
    assert_clear_error(status, 404, text, "missing row")
    status, text = await post(
        http, "/api/triggers/notes/process/run", {"primary_key": {"id": 1}, "tenant": EVIL_TENANT}
    )
    assert_clear_error(status, 400, text, "evil tenant")
    for path in (
        "/api/jobs/1;DROP%20TABLE%20x",
        "/api/jobs?state=executing'%20OR%20'1'='1",
        "/api/jobs?limit=1;DROP",
        "/api/triggers/docs;DROP/process/run",
    ):
        method = http.post if path.endswith("/run") else http.get
        async with method(path) as r:
            assert 400 <= r.status < 500, (path, r.status)
            assert_clear_error(r.status, r.status, await r.text(), path)


async def cli_checks(config: Path) -> None:
    code, out = await cli(config, "docs", "process", "--pk", json.dumps({"id": DOC_IDS[2]}))
    assert code == 0, out
    code, out = await cli(config, "docs", "process", "--pk", DOC_IDS[3])  # a bare value
    assert code == 0, out
    code, out = await cli(config, "docs", "process", "--pk", "' OR '1'='1' --")  # no such row
    assert code == 0 and "0 job(s) enqueued" in out, out
    for args in (
        ["docs", "process", "--pk", '{"id": 1, "nope": 2}'],
        ["docs", "process", "--pk", "1", "--actor", "[1]"],
        ["notes", "process", "--pk", "1", "--tenant", EVIL_TENANT],
        ["docs; DROP TABLE x", "process", "--pk", "1"],
    ):
        code, out = await cli(config, *args)
        assert code == 2, (args, code, out)
        assert "Traceback" not in out and out.strip(), (args, out)


async def sql_checks(conn: asyncpg.Connection) -> None:
    await conn.fetchval(
        "SELECT jobd.run_trigger('docs', 'process', jsonb_build_object('id', $1::text))",
        DOC_IDS[4],
    )
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await conn.fetchval(
            "SELECT jobd.run_trigger('notes', 'process', '{\"id\": 1}', NULL, $1)", EVIL_TENANT
        )
    with pytest.raises(asyncpg.UndefinedObjectError):
        await conn.fetchval("SELECT jobd.run_trigger('docs; DROP TABLE x', 'process')")
    with pytest.raises(asyncpg.NoDataFoundError):
        await conn.fetchval(
            "SELECT jobd.run_trigger('docs', 'process', jsonb_build_object('id', $1::text))",
            "' OR '1'='1' --",
        )


async def _all_done(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval("SELECT count(*) = 5 AND bool_and(state = 'completed') FROM jobd.jobs")
    )


async def check_survivors(conn: asyncpg.Connection, sink: Sink) -> None:
    assert await conn.fetchval("SELECT count(*) FROM public.x") == 1
    assert await conn.fetchval("SELECT count(*) FROM public.docs") == len(DOC_IDS)
    assert await conn.fetchval("SELECT count(*) FROM acme.notes") == 1
    assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")
    assert len(sink.raw_paths) == len(DOC_IDS), sink.raw_paths
    for raw in sink.raw_paths:
        segments = raw.split("/")
        assert segments[:2] == ["", "docs"] and len(segments) == 3, raw
        assert segments[2] not in (".", "..") and "?" not in raw and "#" not in raw, raw
    assert sorted(unquote(raw.split("/")[2]) for raw in sink.raw_paths) == sorted(DOC_IDS)
