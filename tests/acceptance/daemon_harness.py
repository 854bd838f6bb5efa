"""Run the real daemon (`python -m jobd run -c FILE`) as a subprocess for acceptance tests.

    with DaemonProcess(config_path) as daemon:
        ready = daemon.start()                      # waits for the `daemon.ready` line
        daemon.wait_event("job.complete", worker="orders.process")
        assert daemon.stop() == 0                   # SIGTERM, then wait for the exit

The daemon logs JSON lines (the config sets `log.format: json`); two reader threads parse
stdout and stderr into `events` (dicts) and keep every other line in `other_lines`.
Every wait is bounded and is a wait on a condition, never a bare sleep. Leaving the
`with` block kills the process if it still runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


class DaemonFailed(AssertionError):
    """The daemon exited, or an awaited event did not come in time."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    check: Callable[[], T], timeout_s: float = 10.0, what: str = "condition", every_s: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; that value. Bounded by `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


def sql(url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Run SQL on a fresh connection; its rows as dicts (no args: a script, no rows)."""

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url)
        try:
            if not args and ";" in query:
                await conn.execute(query)
                return []
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())


def run_cli(
    *args: str, timeout_s: float = 30.0, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m jobd ARGS` to completion (the operator commands)."""
    return subprocess.run(
        [sys.executable, "-m", "jobd", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        check=False,
        env={**os.environ, **(env or {})},
    )


class DaemonProcess:
    """One `jobd run` (or `jobd demo`) process and the events it logged."""

    def __init__(
        self,
        config: Path | None,
        *,
        command: str = "run",
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = [sys.executable, "-m", "jobd", command]
        if config is not None:
            self.args += ["-c", str(config)]
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.events: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._changed = threading.Condition()
        self._readers: list[threading.Thread] = []
        self.proc: subprocess.Popen[str] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def spawn(self) -> None:
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for stream in (self.proc.stdout, self.proc.stderr):
            reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
            reader.start()
            self._readers.append(reader)

    def start(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """Spawn and wait for `daemon.ready`; that event."""
        self.spawn()
        return self.wait_event("daemon.ready", timeout_s=timeout_s)

    def send(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait_exit(self, timeout_s: float = 20.0) -> int:
        """The exit code; fails (and kills) when the process outlives `timeout_s`."""
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            tail = self.log_tail()
            raise DaemonFailed(f"daemon still running after {timeout_s}s\n{tail}") from None
        self._close_streams()
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        self.send(signum)
        return self.wait_exit(timeout_s)

    def kill(self) -> None:
        """Kill the process if it still runs; close its pipes (idempotent)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._close_streams()

    def _close_streams(self) -> None:
        assert self.proc is not None
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- output -------------------------------------------------------------------------

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, ""):
            text = line.rstrip("\n")
            try:
                event = json.loads(text)
            except ValueError:
                event = None
            with self._changed:
                if isinstance(event, dict) and "event" in event:
                    self.events.append(event)
                else:
                    self.other_lines.append(text)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def find(self, name: str, start: int = 0, **match: Any) -> list[dict[str, Any]]:
        """Events named `name` (from index `start`) whose keys equal `match`."""
        with self._changed:
            events = self.events[start:]
        return [
            e for e in events if e["event"] == name and all(e.get(k) == v for k, v in match.items())
        ]

    def mark(self) -> int:
        """An index into `events`: pass it as `start` to see only later events."""
        with self._changed:
            return len(self.events)

    def wait_event(
        self, name: str, timeout_s: float = 10.0, start: int = 0, **match: Any
    ) -> dict[str, Any]:
        """The first event `name` with keys `match` (from index `start`); bounded."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                found = self.find(name, start, **match)
                if found:
                    return found[0]
                exited = self.proc is not None and self.proc.poll() is not None
                remaining = deadline - time.monotonic()
                if exited or remaining <= 0:
                    why = "the daemon exited" if exited else f"timed out after {timeout_s}s"
                    raise DaemonFailed(f"{why} waiting for {name} {match}\n{self.log_tail()}")
                self._changed.wait(min(remaining, 0.2))

    def log_tail(self, lines: int = 40) -> str:
        with self._changed:
            tail = [json.dumps(e) for e in self.events[-lines:]] + self.other_lines[-lines:]
        return "\n".join(tail)

    def tracebacks(self) -> list[str]:
        """Lines that look like a Python traceback (none may reach the user)."""
        with self._changed:
            texts = self.other_lines + [json.dumps(e) for e in self.events]
        return [t for t in texts if "Traceback (most recent call last)" in t]


# -- the test setup: tables, config, fixtures -------------------------------------------

SETUP = """
CREATE TABLE public.orders (
    id int PRIMARY KEY, status text NOT NULL DEFAULT 'new', sleep_ms int NOT NULL DEFAULT 0);
CREATE TABLE public.notes (id serial PRIMARY KEY, schedule text, input text);
"""

CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"{token}}}
engine: {{poll_interval: 200ms, shutdown_grace: {grace}, heartbeat: 1s}}
queues: {{default: 5, work: {work_limit}}}
resources:
  orders:
    table: public.orders
    actions:
      nap: {{python: "tests.acceptance.entrypoints:nap"}}
      done: {{update: {{set: {{status: done}}}}}}
      note: {{python: "tests.acceptance.entrypoints:note"}}
    triggers:
      process:
        action: nap
        where: "status = 'new'"
        scheduler_cron: "0 0 1 1 *"
        on_success: done
        queue: work
    scheduled_actions:
      tally: {{cron: "0 0 1 1 *", action: note, action_input: {{period: year}}}}
{extra}"""

# A second resource a reload adds (its table exists from the start).
EXTRA_RESOURCE = """
  orders_again:
    table: public.orders
    actions:
      nap: {python: "tests.acceptance.entrypoints:nap"}
    triggers:
      again: {action: nap, where: "status = 'done'", scheduler_cron: false, queue: default}
"""


def write_config(
    path: Path,
    url: str,
    port: int,
    *,
    grace: str = "10s",
    work_limit: int = 5,
    token: str | None = None,
    extra: str = "",
) -> Path:
    token_text = f', token: "{token}"' if token else ""
    path.write_text(
        CONFIG.format(
            url=url, port=port, grace=grace, work_limit=work_limit, token=token_text, extra=extra
        )
    )
    return path


@pytest.fixture
def db(database_url: str) -> str:
    """The test database with the `orders` and `notes` tables."""
    sql(database_url, SETUP)
    return database_url


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def daemon_for(tmp_path: Path) -> Iterator[Any]:
    """`daemon_for(config, **env)`: a DaemonProcess killed at teardown if still running."""
    started: list[DaemonProcess] = []

    def make(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(config, env=env)
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.kill()
        assert not daemon.tracebacks(), daemon.log_tail()


def http(
    port: int, path: str, *, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one request to the admin listener."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read().decode()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def add_orders(url: str, *rows: tuple[int, int]) -> None:
    """Insert (id, sleep_ms) rows with status 'new'."""
    for order_id, sleep_ms in rows:
        sql(url, "INSERT INTO public.orders (id, sleep_ms) VALUES ($1, $2)", order_id, sleep_ms)


def enqueue(url: str, *ids: int) -> list[int]:
    """Job ids of `orders.process` for these rows, through the SQL function."""
    keys = json.dumps([{"id": i} for i in ids])
    rows = sql(url, "SELECT jobd.run_triggers('orders', 'process', $1::jsonb) AS ids", keys)
    return list(rows[0]["ids"])


def job_states(url: str, ids: list[int]) -> dict[int, str]:
    rows = sql(url, "SELECT id, state FROM jobd.jobs WHERE id = ANY($1::bigint[])", ids)
    return {r["id"]: r["state"] for r in rows}


def all_in(url: str, ids: list[int], *states: str) -> bool:
    found = job_states(url, ids)
    return len(found) == len(ids) and all(s in states for s in found.values())


# -- a webhook receiver on loopback, for daemons' HTTP actions ---------------------------

Reply = tuple[int, bytes]


@contextlib.contextmanager
def http_receiver(answer: Callable[[str, dict[str, str], bytes], Reply]) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 whose every request is answered by
    `answer(path, headers, body) -> (status, body)`; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, reply = answer(self.path, dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
