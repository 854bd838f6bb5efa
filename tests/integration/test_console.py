"""The web console over real HTTP on loopback against a real database, without a
browser: every page renders, the access rules (token sign-in, session cookie, CSRF and
origin checks, loopback without a token), bulk actions with their confirmation, and the
row view's condition-by-condition answer. tests/acceptance/test_console_browser.py drives
the same pages in chromium against a real daemon."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from structlog.testing import capture_logs

from jobd.admin.metrics import Metrics
from jobd.admin.server import AdminDeps, AdminServer
from jobd.config import load_config_text
from jobd.console import install
from jobd.engine.registry import WorkerRegistry
from jobd.sql.db import create_pool
from jobd.triggers.runtime import TriggerRuntime
from tests.integration.test_admin import StubEngine

CONFIG = """
version: 1
database: {url: "postgresql://unused"}
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    reads:
      positive: {where: "id > 0"}
    triggers:
      process:
        action: work
        where: "status = 'new' AND note IS NULL"
        read: positive
        scheduler_cron: false
    scheduled_actions:
      nightly: {action: work, cron: "@daily"}
queues: {default: 5}
"""
TOKEN = "console-s3cret"


@dataclass
class Console:
    url: str
    deps: AdminDeps

    async def jobs(self, *ids: int) -> list[int]:
        keys = [{"id": i} for i in ids]
        q = "SELECT jobd.run_triggers('orders', 'process', $1::jsonb)"
        return list(await self.deps.pool.fetchval(q, keys))

    async def states(self, ids: list[int]) -> list[str]:
        q = "SELECT state::text FROM jobd.jobs WHERE id = ANY($1::bigint[]) ORDER BY id"
        return [r[0] for r in await self.deps.pool.fetch(q, ids)]


async def _start(database_url: str, token: str | None) -> AsyncIterator[Console]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    await pool.execute("CREATE TABLE orders (id int PRIMARY KEY, status text, note text)")
    await pool.execute("INSERT INTO orders VALUES (1, 'new', NULL), (2, 'done', NULL)")
    spec = load_config_text(CONFIG, "t.yaml", env={})
    async with pool.acquire() as conn:
        await TriggerRuntime.create(spec, WorkerRegistry(), pool, conn)
    deps = AdminDeps(pool=pool, schema="jobd", spec=spec, engine=StubEngine(), metrics=Metrics())
    server = AdminServer("127.0.0.1:0", token, deps)
    install(server.app, token)
    await server.start()
    try:
        yield Console(server.url, deps)
    finally:
        await server.stop()
        await pool.close()


@pytest.fixture
async def signed(database_url: str) -> AsyncIterator[Console]:
    async for c in _start(database_url, TOKEN):
        yield c


@pytest.fixture
async def open_console(database_url: str) -> AsyncIterator[Console]:
    async for c in _start(database_url, None):
        yield c


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str, Any]:
    async with http.get(url, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


async def post(
    http: aiohttp.ClientSession, url: str, data: dict[str, str], **headers: str
) -> tuple[int, str, Any]:
    async with http.post(url, data=data, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


async def sign_in(c: Console, http: aiohttp.ClientSession) -> None:
    status, _, headers = await post(
        http, c.url + "/console/login", {"token": TOKEN, "next": "/console/jobs"}
    )
    assert status == 303 and headers["Location"] == "/console/jobs"


async def test_every_page_renders_on_loopback_without_a_token(open_console: Console) -> None:
    """Without admin.token a loopback client needs no sign-in: `/` leads to the console,
    it gets an HttpOnly, SameSite=Strict session cookie, and every page answers HTML with
    the content-security policy; an unknown job or resource is a 404 page."""
    c = open_console
    ids = await c.jobs(1, 2)
    async with session() as http:
        status, _, headers = await get(http, c.url + "/")
        assert status == 302 and headers["Location"] == "/console/"
        status, page, headers = await get(http, c.url + "/console/")
        assert status == 200, page
        cookie = headers["Set-Cookie"]
        assert "jobd_console=" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie and "Path=/console" in cookie
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "Overview" in page and "node-1" not in page  # no node row without a daemon
        for path in (
            "/console/jobs",
            "/console/jobs?state=available&queue=default&worker=orders.process",
            f"/console/jobs?pk=id%3D1&before={ids[1] + 1}",
            f"/console/jobs/{ids[0]}",
            "/console/triggers",
            "/console/triggers/orders/process",
            "/console/rows",
            "/console/rows?resource=orders&pk=1",
        ):
            status, page, headers = await get(http, c.url + path)
            assert status == 200, (path, page)
            assert headers["Content-Type"].startswith("text/html")
        status, page, _ = await get(http, c.url + "/console/jobs/999999")
        assert status == 404 and "no job 999999" in page
        status, page, _ = await get(http, c.url + "/console/rows?resource=ordrs&pk=1")
        assert status == 404 and "orders" in page
        status, page, _ = await get(http, c.url + "/console/static/console.css")
        assert status == 200 and "--accent" in page


async def test_token_sign_in_session_and_post_checks(signed: Console) -> None:
    """With a token, pages send the browser to sign in; a wrong token is refused; the
    right one opens a session (cookie without the token); a POST without the CSRF token,
    with another Origin or marked cross-site by Sec-Fetch-Site is refused with 403 and
    changes nothing; the same POST from the page pauses the queue."""
    c = signed
    async with session() as http:
        status, _, headers = await get(http, c.url + "/console/jobs?state=available")
        assert status == 303
        login, _, back = headers["Location"].partition("?next=")
        assert login == "/console/login" and unquote(back) == "/console/jobs?state=available"
        status, page, _ = await post(http, c.url + "/console/login", {"token": "nope"})
        assert status == 401 and "not the admin token" in page
        await sign_in(c, http)
        assert all(TOKEN not in m.value for m in http.cookie_jar)
        status, page, _ = await get(http, c.url + "/console/")
        assert status == 200 and TOKEN not in page
        csrf = csrf_of(page)

        url = c.url + "/console/queues/default/pause"
        assert (await post(http, url, {}))[0] == 403
        assert (await post(http, url, {"csrf": csrf + "x"}))[0] == 403
        status, page, _ = await post(http, url, {"csrf": csrf}, Origin="http://evil.example")
        assert status == 403 and "cross-site" in page
        assert (await post(http, url, {"csrf": csrf}, **{"Sec-Fetch-Site": "same-site"}))[0] == 403
        paused = "SELECT paused FROM jobd.queues WHERE name = 'default'"
        assert await c.deps.pool.fetchval(paused) is None
        status, _, headers = await post(http, url, {"csrf": csrf}, Origin=c.url)
        assert status == 303 and headers["Location"] == "/console/"
        assert await c.deps.pool.fetchval(paused) is True
        status, page, _ = await get(http, c.url + "/console/")
        assert "queue default paused" in page

    async with session() as stranger:  # no session: refused, not redirected
        assert (await post(stranger, url, {"csrf": csrf}))[0] == 403


async def test_bulk_cancel_counts_first_then_cancels(signed: Console) -> None:
    """A bulk action shows how many jobs the filter selects and changes nothing until
    confirmed; the confirmation cancels exactly those (and logs `console.action`); a
    bulk action needs a filter."""
    c = signed
    ids = await c.jobs(1, 2)
    async with session() as http:
        await sign_in(c, http)
        csrf = csrf_of((await get(http, c.url + "/console/jobs"))[1])
        url = c.url + "/console/jobs/bulk"
        status, page, _ = await post(http, url, {"csrf": csrf, "action": "cancel"})
        assert status == 400 and "needs a filter" in page
        form = {"csrf": csrf, "action": "cancel", "worker": "orders.process"}
        status, page, _ = await post(http, url, form)
        assert status == 200 and "<strong>2</strong>" in page
        assert await c.states(ids) == ["available", "available"]
        with capture_logs() as logs:
            status, _, headers = await post(http, url, {**form, "confirm": "yes"})
        assert status == 303 and headers["Location"].startswith("/console/jobs?worker=")
        (action,) = [e for e in logs if e["event"] == "console.action"]
        assert action["result"] == "2 job(s) cancelled" and action["path"] == "/console/jobs/bulk"
        assert await c.states(ids) == ["cancelled", "cancelled"]
        status, page, _ = await get(http, c.url + headers["Location"])
        assert "2 job(s) cancelled" in page


async def test_row_view_says_which_condition_fails(signed: Console) -> None:
    """The row view evaluates the trigger's where and its read's filter part by part on
    the row: orders 2 (status done) fails `status = 'new'` and passes the others, orders
    1 matches; a row that is gone is said to be gone."""
    c = signed
    async with session() as http:
        await sign_in(c, http)
        _, page, _ = await get(http, c.url + "/console/rows?resource=orders&pk=2")
        assert "does not match now" in page
        assert re.search(r"status = &#39;new&#39;</code> is <strong>false", page), page
        assert re.search(r"note IS NULL</code> is <strong>true", page)
        assert re.search(r"read positive: <code>id &gt; 0</code> is <strong>true", page)
        _, page, _ = await get(http, c.url + "/console/rows?resource=orders&pk=id%3D1")
        assert "matches its where now" in page
        _, page, _ = await get(http, c.url + "/console/rows?resource=orders&pk=77")
        assert "No such row now" in page


async def test_filtered_pages_read_a_bounded_window_and_go_on_older(
    signed: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filtered page reads at most WINDOW_IDS ids and says which; "older" goes on
    from where it stopped until the row's job is found; the row view reads the same
    window and finds the job holding the row's unique key outside it too."""
    from jobd.console import data

    monkeypatch.setattr(data, "WINDOW_IDS", 2)
    c = signed
    first = await c.jobs(1)
    await c.deps.pool.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(100, 104) g")
    assert len(await c.jobs(*range(100, 105))) == 5  # five newer jobs of other rows
    async with session() as http:
        await sign_in(c, http)
        path, seen = "/console/jobs?pk=id%3D1", []
        while True:
            _, page, _ = await get(http, c.url + path)
            seen.append(re.search(r"Looked at jobs (\d+) to (\d+)", page).groups())
            if f'href="/console/jobs/{first[0]}"' in page:
                break
            path = re.search(r'href="(/console/jobs\?[^"]+)" id="older"', page).group(1)
            path = path.replace("&amp;", "&")
        assert seen == [("5", "6"), ("3", "4"), ("1", "2")]
        _, page, _ = await get(http, c.url + "/console/rows?resource=orders&pk=1")
        assert "Looked at jobs 5 to 6" in page and "Look at older jobs" in page
        # ... but the job that holds the row's key is found by its index, wherever it is
        assert f'href="/console/jobs/{first[0]}"' in page and "holds the row's key" in page


async def test_trigger_and_schedule_run_now_pause_and_resume(signed: Console) -> None:
    """From the triggers page: Run now enqueues the trigger's scheduler job (once: a
    second run finds it pending) and the scheduled action's job; Pause and Resume act on
    the schedule's queue; an unknown schedule is a 404 page."""
    c = signed
    async with session() as http:
        await sign_in(c, http)
        csrf = csrf_of((await get(http, c.url + "/console/triggers"))[1])
        form = {"csrf": csrf, "back": "/console/triggers"}
        base = c.url + "/console"
        assert (await post(http, base + "/triggers/orders/process/run", form))[0] == 303
        assert (await post(http, base + "/triggers/orders/process/run", form))[0] == 303
        assert (await post(http, base + "/schedules/orders/nightly/run", form))[0] == 303
        _, page, _ = await get(http, base + "/triggers")
        assert "scheduler job" in page and "already has a pending run" in page
        workers = await c.deps.pool.fetch("SELECT worker FROM jobd.jobs ORDER BY id")
        assert [r[0] for r in workers] == ["orders.process.scheduler", "orders.nightly"]

        queue = c.deps.spec.resources["orders"].scheduled_actions["nightly"].queue
        paused = "SELECT paused FROM jobd.queues WHERE name = $1"
        assert (await post(http, base + "/schedules/orders/nightly/pause", form))[0] == 303
        assert await c.deps.pool.fetchval(paused, queue) is True
        _, page, _ = await get(http, base + "/triggers")
        assert f"queue {queue} paused" in page
        assert (await post(http, base + "/schedules/orders/nightly/resume", form))[0] == 303
        assert await c.deps.pool.fetchval(paused, queue) is False
        status, page, _ = await post(http, base + "/schedules/orders/weekly/run", form)
        assert status == 404 and "no scheduled action" in page


async def test_queue_scale_and_its_refusals(signed: Console) -> None:
    """Scale sets the queue's limit in the database and an empty limit goes back to the
    configured one; a limit that is not a positive integer is a 400 page, an unknown
    queue a 404 page naming the closest one."""
    c = signed
    limit = "SELECT local_limit FROM jobd.queues WHERE name = 'default'"
    async with session() as http:
        await sign_in(c, http)
        csrf = csrf_of((await get(http, c.url + "/console/"))[1])
        url = c.url + "/console/queues/default/scale"
        assert (await post(http, url, {"csrf": csrf, "limit": "3"}))[0] == 303
        assert await c.deps.pool.fetchval(limit) == 3
        _, page, _ = await get(http, c.url + "/console/")
        assert "queue default: limit 3" in page
        assert (await post(http, url, {"csrf": csrf, "limit": ""}))[0] == 303
        assert await c.deps.pool.fetchval(limit) is None
        status, page, _ = await post(http, url, {"csrf": csrf, "limit": "-1"})
        assert status == 400 and "positive integer" in page
        wrong = c.url + "/console/queues/defualt/pause"
        status, page, _ = await post(http, wrong, {"csrf": csrf})
        assert status == 404 and "default" in page
