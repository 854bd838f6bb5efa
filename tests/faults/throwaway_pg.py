"""A throwaway PostgreSQL 15 cluster for tests that restart the server.

    with ThrowawayCluster() as pg:      # initdb + pg_ctl start on a free loopback port
        url = pg.url                    # postgresql://postgres@127.0.0.1:PORT/postgres
        pg.restart()                    # pg_ctl restart -m fast (waits until up again)

initdb refuses to run as root, so as root every command runs as the `postgres` OS user
(`runuser -u postgres --`) in a directory under /tmp that user owns. `missing()` says why
the cluster cannot be made here (a test skips with that reason).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

BIN = Path(os.environ.get("JOBD_FAULT_PG_BIN", "/usr/lib/postgresql/15/bin"))
TIMEOUT_S = 60


def missing() -> str | None:
    """Why no throwaway cluster can be made, or None."""
    for tool in ("initdb", "pg_ctl"):
        if not (BIN / tool).exists():
            return f"{BIN / tool} not found (set JOBD_FAULT_PG_BIN to PostgreSQL's bin dir)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb cannot run"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayCluster:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="jobd-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(BIN / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=100"
        )
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-w",
            "-t",
            str(TIMEOUT_S),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            *extra,
        )

    def start(self) -> None:
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def __enter__(self) -> ThrowawayCluster:
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
