"""A real `jobd run` process for a measurement: its configuration in a temp directory, run
through the statement-counting wrapper (`bench/runners/counting_daemon.py`; `counting=False`
runs the plain CLI), ready when `/readyz` answers 200, stopped with SIGTERM.

The process imports jobd from the code the run measures (bench/harness/source.py), logs to
a file whose tail goes into any failure message, and is killed if it does not stop.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import source
from bench.harness.pgstats import proc_cpu_s
from bench.harness.runners import JOBD_PYTHON

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SNAPSHOT_TIMEOUT_S = 10.0


class DaemonFailed(RuntimeError):
    """The daemon exited or did not answer in time; the message ends with its log's tail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(
    port: int, proc: subprocess.Popen[Any], timeout_s: float = READY_TIMEOUT_S
) -> None:
    """Until the admin listener's /readyz answers 200 (the process must stay alive)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DaemonFailed(f"jobd run exited {proc.returncode} before ready")
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise DaemonFailed("jobd run not ready in time")


class Daemon:
    """`jobd run -c <config>` as a child process. Use `async with Daemon(text, port)`."""

    def __init__(self, config_text: str, port: int, *, counting: bool = True) -> None:
        self.config_text, self.port, self.counting = config_text, port, counting
        self._tmp = tempfile.TemporaryDirectory(prefix="jobd-bench-")
        self.dir = Path(self._tmp.name)
        self.counts_path = self.dir / "counts.json"
        self.log_path = self.dir / "jobd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.final_counts: dict[str, Any] | None = None

    async def __aenter__(self) -> Daemon:
        config = self.dir / "jobd.yaml"
        config.write_text(self.config_text)
        jobd_argv = ["run", "-c", str(config)]
        if self.counting:
            argv = [str(JOBD_PYTHON), "-m", "bench.runners.counting_daemon"]
            argv += ["--counts", str(self.counts_path), "--", *jobd_argv]
        else:
            argv = [str(JOBD_PYTHON), "-m", "jobd", *jobd_argv]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=source.import_root(),
                env=source.env(),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            await wait_ready(self.port, self.proc)
        except BaseException as exc:
            await self.stop()
            raise DaemonFailed(f"{exc}\n{self.log_tail()}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_s(self) -> float | None:
        return proc_cpu_s(self.pid)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _read_counts(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.counts_path.read_text())
        except (OSError, ValueError):
            return None
        return data

    async def counts(self) -> dict[str, Any] | None:
        """A fresh snapshot of the wrapper's counters (None when not counting)."""
        if not self.counting or self.proc is None or self.proc.stdin is None:
            return None
        before = (self._read_counts() or {}).get("seq", -1)
        self.proc.stdin.write(b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT_S
        while time.monotonic() < deadline:
            snap = self._read_counts()
            if snap is not None and snap["seq"] > before:
                return snap
            await asyncio.sleep(0.01)
        raise DaemonFailed(f"no statement counts from the daemon\n{self.log_tail()}")

    async def api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the daemon's admin API; the answer's JSON."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{self.port}{path}", json=body) as resp,
        ):
            if resp.status >= 300:
                raise DaemonFailed(f"{path} answered {resp.status}: {await resp.text()}")
            answer: dict[str, Any] = await resp.json()
            return answer

    async def stop(self) -> None:
        """SIGTERM, wait for the graceful stop (kill after STOP_TIMEOUT_S)."""
        proc = self.proc
        if proc is None or self.returncode is not None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = await asyncio.to_thread(proc.wait, STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.returncode = await asyncio.to_thread(proc.wait)
        if proc.stdin is not None:
            proc.stdin.close()
        snap = self._read_counts()
        self.final_counts = snap if snap and snap.get("final") else None
