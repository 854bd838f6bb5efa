"""The real `jobd run` process on a fresh test database: the ready line and probes,
graceful SIGTERM with running jobs, SIGHUP reloads (valid and invalid), the systemd
watchdog, and start-up failures that must end in a clear message, never a traceback.

Each test writes a config in tmp_path (JSON logs, an admin listener on a free loopback
port, a table `orders` whose trigger runs `tests.acceptance.entrypoints:nap`) and runs
`python -m jobd run` from the repository root (so the entrypoints import).
"""

from __future__ import annotations

import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance import daemon_harness as h

# The shared fixtures, by assignment (an import would be "redefined" by the parameters).
db, port, daemon_for = h.db, h.port, h.daemon_for

# -- 1. ready line and probes ------------------------------------------------------------


def test_ready_line_and_probes(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """One `daemon.ready` line with the node id and a summary; /healthz and /readyz answer
    200; without a token the API answers loopback clients; SIGTERM exits 0."""
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port))
    ready = daemon.start()
    assert ready["node_id"] and "1 resource" in ready["summary"]
    assert h.http(port, "/healthz") == (200, {"status": "ok"})
    assert h.http(port, "/readyz") == (200, {"status": "ready"})
    status, body = h.http(port, "/api/status")
    assert status == 200 and body["this_node"]["node_id"] == ready["node_id"]
    assert daemon.stop() == 0
    assert len(daemon.find("daemon.ready")) == 1
    assert daemon.find("daemon.stopped")


# -- 2. graceful SIGTERM -----------------------------------------------------------------


def test_sigterm_with_running_jobs(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """SIGTERM while jobs run: the short ones finish within `shutdown_grace`, the long
    ones go back to `available`; none stays `executing`; exit code 0."""
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port, grace="1500ms"))
    daemon.start()
    h.add_orders(db, (1, 700), (2, 700), (3, 60_000), (4, 60_000))
    ids = h.enqueue(db, 1, 2, 3, 4)
    h.wait_for(lambda: h.all_in(db, ids, "executing"), what="all four jobs executing")
    assert daemon.stop(timeout_s=15) == 0
    states = h.job_states(db, ids)
    assert [states[i] for i in ids] == ["completed", "completed", "available", "available"]
    statuses = h.sql(db, "SELECT id, status FROM public.orders ORDER BY id")
    assert [r["status"] for r in statuses] == ["done", "done", "new", "new"]
    assert daemon.find("daemon.stopping") and daemon.find("daemon.stopped")


# -- 3. SIGHUP reload --------------------------------------------------------------------


def queue_limits(port: int) -> dict[str, Any]:
    status, body = h.http(port, "/api/queues")
    assert status == 200, body
    return {q["name"]: q["limit"] for q in body["queues"]}


def test_sighup_applies_a_valid_config(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """A valid changed config is applied on SIGHUP (new queue limit, a new resource whose
    trigger then runs) while a running job finishes on its first attempt (not dropped)."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    daemon = daemon_for(config)
    daemon.start()
    assert queue_limits(port)["work"] == 5
    h.add_orders(db, (1, 2500))
    [running] = h.enqueue(db, 1)
    h.wait_for(lambda: h.all_in(db, [running], "executing"), what="the job executing")

    h.write_config(config, db, port, work_limit=7, extra=h.EXTRA_RESOURCE)
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    reloaded = daemon.wait_event("daemon.reloaded", timeout_s=15, start=mark)
    assert "2 resources" in reloaded["summary"]
    assert queue_limits(port)["work"] == 7
    assert h.job_states(db, [running])[running] == "completed"  # the old generation let it finish
    job = h.sql(db, "SELECT attempt, errors FROM jobd.jobs WHERE id = $1", running)[0]
    assert job["attempt"] == 1 and job["errors"] == []

    [again] = h.sql(db, "SELECT jobd.run_trigger('orders_again', 'again', '{\"id\": 1}') AS id")
    h.wait_for(lambda: h.all_in(db, [again["id"]], "completed"), what="the new trigger's job")
    assert daemon.stop() == 0


def test_sighup_rejects_an_invalid_config(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """An invalid config on SIGHUP is logged as `daemon.reload_rejected` with all its
    problems; the running config keeps working (a job enqueued afterwards completes)."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    daemon = daemon_for(config)
    daemon.start()
    text = config.read_text().replace("queues: {default: 5", "queues: {default: -1")
    config.write_text(text + "bogus_key: 1\n")
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    rejected = daemon.wait_event("daemon.reload_rejected", start=mark)
    problems = "\n".join(rejected["problems"])
    assert len(rejected["problems"]) >= 2, problems
    assert "bogus_key" in problems and "default" in problems
    assert not daemon.find("daemon.reloaded")

    h.add_orders(db, (5, 0))
    ids = h.enqueue(db, 5)
    h.wait_for(lambda: h.all_in(db, ids, "completed"), what="a job after the rejected reload")
    assert h.http(port, "/readyz")[0] == 200
    assert queue_limits(port)["default"] == 5
    assert daemon.stop() == 0


# -- 4. systemd notify and watchdog ------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[socket.socket]:
    """A bound Unix datagram socket in a short temporary directory (paths max ~108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="jobd-") as tmp:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(Path(tmp) / "notify"))
        sock.settimeout(15)
        yield sock
        sock.close()


def receive_until(sock: socket.socket, wanted: str, seen: list[str]) -> None:
    """Read datagrams into `seen` until one contains the line `wanted` (socket timeout)."""
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message.splitlines():
            return


def test_watchdog_pings(
    db: str, port: int, tmp_path: Path, daemon_for: Any, notify_socket: socket.socket
) -> None:
    """With NOTIFY_SOCKET and WATCHDOG_USEC set, the daemon sends READY=1 (with a
    STATUS), then WATCHDOG=1 pings, and STOPPING=1 on SIGTERM."""
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "1000000"}
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port), env=env)
    daemon.spawn()
    seen: list[str] = []
    receive_until(notify_socket, "READY=1", seen)
    assert any(line.startswith("STATUS=jobd ready") for line in seen[-1].splitlines())
    pings = 0
    while pings < 3:  # about 0.5 s apart (half of WatchdogSec)
        receive_until(notify_socket, "WATCHDOG=1", seen)
        pings += 1
    daemon.send(signal.SIGTERM)
    receive_until(notify_socket, "STOPPING=1", seen)
    assert daemon.wait_exit() == 0


def test_sighup_rejects_a_config_that_does_not_fit_the_database(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """A schema-valid config naming a missing table is rejected on SIGHUP (it used to
    crash the daemon); the SQL registry still describes the running config."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    daemon = daemon_for(config)
    daemon.start()
    missing = h.EXTRA_RESOURCE.replace("public.orders", "public.no_such_table")
    h.write_config(config, db, port, extra=missing)
    mark = daemon.mark()
    daemon.send(signal.SIGHUP)
    rejected = daemon.wait_event("daemon.reload_rejected", start=mark)
    assert "no_such_table" in "\n".join(rejected["problems"])
    registry = h.sql(db, "SELECT resource FROM jobd.registry WHERE kind = 'trigger' ORDER BY 1")
    assert [r["resource"] for r in registry] == ["orders"]
    h.add_orders(db, (9, 0))
    ids = h.enqueue(db, 9)
    h.wait_for(lambda: h.all_in(db, ids, "completed"), what="a job after the rejected reload")
    assert daemon.stop() == 0


# -- start-up failures: a clear message, the right exit code, no traceback ---------------


def test_invalid_config_exits_2_listing_every_problem(db: str, port: int, tmp_path: Path) -> None:
    """`jobd run` on a config with two problems exits 2, lists both with file:line, and
    starts nothing."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    config.write_text(config.read_text().replace("default: 5", "default: -1") + "bogus: 1\n")
    out = h.run_cli("run", "-c", str(config))
    assert out.returncode == 2, out.stderr
    assert "bogus" in out.stderr and "default" in out.stderr
    assert f"{config}:" in out.stderr and "2 problems found" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_unreachable_database_exits_1(port: int, tmp_path: Path) -> None:
    """A database nobody listens on: exit 1, a message naming where (never the
    password), no traceback."""
    url = f"postgresql://jobd:hunter2@127.0.0.1:{h.free_port()}/app"
    out = h.run_cli("run", "-c", str(h.write_config(tmp_path / "jobd.yaml", url, port)))
    assert out.returncode == 1, out.stderr
    assert "cannot connect to the database" in out.stderr
    assert f"127.0.0.1:{url.split(':')[3].split('/')[0]}/app" in out.stderr
    assert "hunter2" not in out.stderr and "Traceback" not in out.stderr


def test_taken_admin_port_exits_1_before_any_job_runs(db: str, port: int, tmp_path: Path) -> None:
    """The admin port in use: exit 1 with a clear message; the engine never started (no
    node registered, no job taken)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        out = h.run_cli("run", "-c", str(h.write_config(tmp_path / "jobd.yaml", db, port)))
    assert out.returncode == 1, out.stderr
    assert f"admin listener cannot bind 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr
    assert h.sql(db, "SELECT count(*) AS n FROM jobd.nodes")[0]["n"] == 0
