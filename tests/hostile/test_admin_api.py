"""The admin API's table of hostile requests, over real HTTP on loopback against a real
database: each gets its 4xx status and a JSON error `{"error", "hint"}` naming the problem,
and neither the answers nor the daemon's log hold a traceback, the token or a password."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
import structlog

from jobd.admin.server import AdminDeps, AdminServer
from jobd.config import load_config_text
from jobd.daemon.supervisor import POOL_HEADROOM, pool_size
from jobd.engine.ops import PoolCapacity
from jobd.engine.registry import WorkerRegistry
from jobd.logging import configure
from jobd.sql.db import create_pool
from jobd.triggers.runtime import TriggerRuntime
from tests.hostile.support import SETUP_SQL, TOKEN, assert_no_leak, config_text

AUTH = {"Authorization": f"Bearer {TOKEN}"}
RUN = "/api/triggers/orders/process/run"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    needle: str  # in the error or its hint
    headers: tuple[tuple[str, str], ...] = ()


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES = [
    # -- the token ------------------------------------------------------------------
    Case("no token", "GET", "/api/jobs", None, 401, "Bearer", (("Authorization", ""),)),
    Case("wrong token", "GET", "/api/jobs", None, 401, "Bearer", (("Authorization", "Bearer x"),)),
    Case("basic scheme", "GET", "/api/jobs", None, 401, "Bearer", (("Authorization", "Basic x"),)),
    # -- ids and query parameters ---------------------------------------------------
    Case("superscript id", "GET", "/api/jobs/²", None, 400, "job id"),
    Case("id beyond bigint", "GET", "/api/jobs/99999999999999999999", None, 400, "job id"),
    Case("negative id", "GET", "/api/jobs/-1", None, 400, "job id"),
    Case("arabic digits id", "GET", "/api/jobs/٣", None, 400, "job id"),
    Case("retry beyond bigint", "POST", "/api/jobs/99999999999999999999/retry", None, 400, "id"),
    Case("cancel superscript", "POST", "/api/jobs/²/cancel", None, 400, "job id"),
    Case("superscript limit", "GET", "/api/jobs?limit=²", None, 400, "limit"),
    Case("limit beyond bigint", "GET", "/api/jobs?limit=99999999999999999999", None, 400, "limit"),
    Case("limit zero", "GET", "/api/jobs?limit=0", None, 400, "limit"),
    Case("NUL in queue filter", "GET", "/api/jobs?queue=a%00b", None, 400, "NUL"),
    Case("NUL in worker filter", "GET", "/api/jobs?worker=%00", None, 400, "NUL"),
    Case("NUL in state filter", "GET", "/api/jobs?state=%00", None, 400, "state"),
    # -- queues ---------------------------------------------------------------------
    Case("scale 3e9", "POST", "/api/queues/default/scale", js({"limit": 3000000000}), 400, "pool"),
    Case(
        "scale over pool", "POST", "/api/queues/default/scale", js({"limit": 50}), 400, "pool_size"
    ),
    Case("scale float", "POST", "/api/queues/default/scale", js({"limit": 2.5}), 400, "integer"),
    Case("scale bool", "POST", "/api/queues/default/scale", js({"limit": True}), 400, "integer"),
    Case("scale unknown", "POST", "/api/queues/defualt/scale", js({"limit": 2}), 404, "default"),
    Case("pause unknown", "POST", "/api/queues/nosuchqueue/pause", None, 404, "create"),
    Case("resume unknown", "POST", "/api/queues/webhookz/resume", None, 404, "create"),
    Case("pause NUL name", "POST", "/api/queues/a%00b/pause", js({"create": True}), 400, "name"),
    Case("create flag type", "POST", "/api/queues/x/pause", js({"create": "yes"}), 400, "create"),
    Case("remove configured", "DELETE", "/api/queues/default", None, 409, "configuration"),
    Case("remove unknown", "DELETE", "/api/queues/nosuchqueue", None, 404, "queue"),
    # -- trigger and schedule runs --------------------------------------------------
    Case("key text for int", "POST", RUN, js({"primary_key": {"id": "abc"}}), 400, "integer"),
    Case("key fraction", "POST", RUN, js({"primary_key": {"id": 1.5}}), 400, "integer"),
    Case("key 1e20", "POST", RUN, js({"primary_key": {"id": 1e20}}), 400, "integer"),
    Case(
        "key beyond bigint",
        "POST",
        RUN,
        b'{"primary_key": {"id": 99999999999999999999}}',
        400,
        "range",
    ),
    Case("key NaN", "POST", RUN, b'{"primary_key": {"id": NaN}}', 400, "NaN"),
    Case("key Infinity", "POST", RUN, b'{"primary_key": {"id": Infinity}}', 400, "Infinity"),
    Case("key NUL", "POST", RUN, b'{"primary_key": {"id": "\\u0000"}}', 400, "NUL"),
    Case("keys text for int", "POST", RUN, js({"primary_keys": [{"id": "x"}]}), 400, "integer"),
    Case(
        "actor NUL",
        "POST",
        RUN,
        b'{"primary_key": {"id": 1}, "actor": {"n": "a\\u0000"}}',
        400,
        "NUL",
    ),
    Case(
        "actor surrogate",
        "POST",
        RUN,
        b'{"primary_key": {"id": 1}, "actor": {"n": "\\ud800"}}',
        400,
        "surrogate",
    ),
    Case(
        "actor key NUL",
        "POST",
        RUN,
        b'{"primary_key": {"id": 1}, "actor": {"\\u0000": 1}}',
        400,
        "NUL",
    ),
    Case(
        "tenant NUL",
        "POST",
        "/api/triggers/notes/process/run",
        b'{"primary_key": {"id": 1}, "tenant": "\\u0000"}',
        400,
        "tenant",
    ),
    Case(
        "no tenant, schema tenancy",
        "POST",
        "/api/triggers/notes/process/run",
        js({"primary_key": {"id": 1}}),
        400,
        "tenant",
    ),
    Case(
        "deleted trigger",
        "POST",
        "/api/triggers/orders/gone/run",
        js({"primary_key": {"id": 1}}),
        404,
        "deleted",
    ),
    Case(
        "deleted trigger scheduler", "POST", "/api/triggers/orders/gone/run", None, 404, "deleted"
    ),
    Case(
        "input NUL",
        "POST",
        "/api/schedules/orders/nightly/run",
        b'{"input": {"x": "\\u0000"}}',
        400,
        "NUL",
    ),
    Case(
        "input surrogate",
        "POST",
        "/api/schedules/orders/nightly/run",
        b'{"input": {"x": "\\udfff"}}',
        400,
        "surrogate",
    ),
]


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    """jobd's own logging setup (every processor, tracebacks rendered) into a buffer."""
    buffer = io.StringIO()
    configure(level="debug", fmt="json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()


@pytest.fixture
async def api(database_url: str, daemon_log: io.StringIO) -> AsyncIterator[str]:
    """The admin listener with a token, wired as the daemon wires it, on 127.0.0.1."""
    conn = await asyncpg.connect(database_url)
    await conn.execute(SETUP_SQL)
    await conn.close()
    spec = load_config_text(config_text(database_url), "jobd.yaml", env={})
    pool = await create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as c:
        await TriggerRuntime.create(spec, WorkerRegistry(), pool, c)  # writes the registry
    capacity = PoolCapacity(pool_size(spec), POOL_HEADROOM)
    deps = AdminDeps(pool=pool, schema="jobd", spec=spec, capacity=capacity)
    server = AdminServer("127.0.0.1:0", TOKEN, deps)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()
        await pool.close()


async def request(url: str, case: Case) -> tuple[int, str]:
    headers = {**AUTH, "Content-Type": "application/json", **dict(case.headers)}
    async with (
        aiohttp.ClientSession(url) as http,
        http.request(
            case.method,
            case.path,
            data=None if case.body is None else io.BytesIO(case.body),
            headers=headers,
        ) as response,
    ):
        return response.status, await response.text()


async def raw_request(url: str, authorization: bytes) -> tuple[int, str]:
    """GET /api/jobs with raw header bytes no HTTP client would send."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /api/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: " + authorization + b"\r\n\r\n"
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def check_answer(case: object, status: int, expected: int, text: str, needle: str) -> None:
    assert status == expected, (case, status, text[:300])
    body = json.loads(text)
    assert isinstance(body.get("error"), str) and body["error"], (case, body)
    message = body["error"] + " " + body.get("hint", "")
    assert needle.lower() in message.lower(), (case, needle, body)
    assert_no_leak(text, case)


async def test_hostile_api_requests(api: str, daemon_log: io.StringIO) -> None:
    """Every request of the table gets its 4xx and a JSON error with the expected words;
    header bytes that are not ASCII (the token among them) get a 401; nothing internal,
    no token and no password reaches an answer or the log, and no request is logged as
    an internal error."""
    failures = []
    for case in CASES:
        status, text = await request(api, case)
        try:
            check_answer(case.name, status, case.status, text, case.needle)
        except (AssertionError, ValueError) as exc:
            failures.append(f"{case.name}: {exc}"[:400])
    for raw in (
        b"Bearer " + TOKEN.encode() + "é".encode(),
        b"Bearer " + "tök".encode() + TOKEN.encode(),
        b"Bearer " + TOKEN.encode() + b"\xff\xfe",
        "Bearer ².".encode(),
    ):
        status, text = await raw_request(api, raw)
        try:
            check_answer(raw, status, 401, text, "Bearer")
        except (AssertionError, ValueError) as exc:
            failures.append(f"raw {raw!r}: {exc}"[:400])
    log = daemon_log.getvalue()
    try:
        assert_no_leak(log, "daemon log")
        assert "admin.internal_error" not in log, "a bad request logged as an internal error"
    except AssertionError as exc:
        failures.append(f"log: {exc}"[:400])
    assert not failures, f"{len(failures)} failed:\n" + "\n".join(failures)
    assert len(CASES) + 4 >= 30


async def test_queues_are_created_and_removed_on_purpose(api: str) -> None:
    """`{"create": true}` makes a new queue; DELETE forgets it (then it is unknown, 404);
    scaling within the pool's room works, beyond it is a 400 saying how to get more."""
    made = Case("create", "POST", "/api/queues/webhooks/pause", js({"create": True}), 200, "")
    status, text = await request(api, made)
    assert status == 200 and json.loads(text)["paused"] is True, text
    gone = Case("remove", "DELETE", "/api/queues/webhooks", None, 200, "")
    status, text = await request(api, gone)
    assert (status, json.loads(text)) == (200, {"name": "webhooks", "removed": True})
    status, text = await request(api, gone)
    check_answer("removed twice", status, 404, text, "unknown queue 'webhooks'")
    room = 20 - POOL_HEADROOM - 2  # pool_size 20 configured; the other queue, mail, has 2
    fits = Case("scale", "POST", "/api/queues/default/scale", js({"limit": room}), 200, "")
    status, text = await request(api, fits)
    assert status == 200 and json.loads(text)["limit"] == room, text
    over = Case("over", "POST", "/api/queues/default/scale", js({"limit": room + 1}), 400, "")
    status, text = await request(api, over)
    check_answer("over", status, 400, text, f"at most {room}")
