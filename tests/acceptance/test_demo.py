"""The embedded path a new user takes: `jobd demo` in a fresh directory starts pgserver's
Postgres in ./.jobd, seeds the example's tables, runs config.example.yaml with jobs
flowing within seconds, and stops cleanly on Ctrl-C (SIGINT).

The demo ignores `JOBD_TEST_DATABASE_URL` and `DATABASE_URL` (both removed from its
environment); its ports move to free ones through `JOBD_ADMIN_LISTEN` and
`JOBD_DEMO_SINK`, which config.example.yaml reads.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.daemon_harness import ROOT, DaemonProcess, free_port, http, run_cli

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 45.0  # a first start runs initdb for the embedded server


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding only config.example.yaml (shared by this module's
    tests, so the embedded cluster is initialised once)."""
    path = tmp_path_factory.mktemp("demo")
    path.chmod(0o755)  # pgserver runs the server as its own user when we are root
    shutil.copy(ROOT / "config.example.yaml", path / "config.example.yaml")
    return path


def demo_env(admin_port: int, sink_port: int) -> dict[str, str]:
    return {
        "JOBD_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "JOBD_DEMO_SINK": f"http://127.0.0.1:{sink_port}",
        "DATABASE_URL": "",
        "JOBD_TEST_DATABASE_URL": "",
        "PYTHONPATH": str(ROOT),  # the demo imports jobd from this checkout
    }


def seconds_between(first: dict[str, Any], later: dict[str, Any]) -> float:
    """Seconds between two log events' timestamps."""
    stamps = [dt.datetime.fromisoformat(e["timestamp"]) for e in (first, later)]
    return (stamps[1] - stamps[0]).total_seconds()


def test_demo_flows_and_stops_on_ctrl_c(demo_dir: Path) -> None:
    """Within a minute: `daemon.ready`, then `job.complete` of `orders.process` (an HTTP
    call to the demo's sink); a new order is sent to the sink within the second it was
    added (its event trigger); the admin listener is ready; SIGINT exits 0 with
    `daemon.stopped` and no traceback."""
    admin_port = free_port()
    env = demo_env(admin_port, free_port())
    with DaemonProcess(None, command="demo", cwd=demo_dir, env=env) as demo:
        demo.start(timeout_s=START_TIMEOUT_S)
        assert demo.find("database.embedded")  # says it is for development only
        demo.wait_event("job.complete", timeout_s=30, worker="orders.process")
        assert demo.find("demo.sink")
        # A new order's job comes from the database trigger (events: [insert, update]):
        # the sink has its call within the same second, no scheduler run asked for.
        added = demo.wait_event("demo.order_added", timeout_s=15)
        path = f"/orders/{added['order_id']}/process"
        called = demo.wait_event("demo.sink", timeout_s=5, path=path)
        assert seconds_between(added, called) < 1.0
        assert http(admin_port, "/readyz") == (200, {"status": "ready"})
        assert demo.stop(signal.SIGINT, timeout_s=20) == 0
        assert demo.find("daemon.stopped")
        assert not demo.tracebacks(), demo.log_tail()


def test_demo_with_its_sink_port_taken_says_how_to_move_it(demo_dir: Path) -> None:
    """The sink's port in use: exit 1 with a message naming the port and
    JOBD_DEMO_SINK, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sink_port = taken.getsockname()[1]
        env = demo_env(free_port(), sink_port)
        with DaemonProcess(None, command="demo", cwd=demo_dir, env=env) as demo:
            demo.spawn()
            code = demo.wait_exit(timeout_s=START_TIMEOUT_S)
    text = "\n".join(demo.other_lines)
    assert code == 1, demo.log_tail()
    assert f"127.0.0.1:{sink_port}" in text and "JOBD_DEMO_SINK" in text
    assert not demo.tracebacks() and not demo.find("daemon.ready")


def test_demo_without_the_example_config_says_where_to_run_it(tmp_path: Path) -> None:
    """`jobd demo` in a directory without config.example.yaml: exit 2 with a hint."""
    out = run_cli("demo", cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert out.returncode == 2
    assert "config.example.yaml not found" in out.stderr and "Traceback" not in out.stderr
