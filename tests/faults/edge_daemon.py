"""Helpers of the edge-case fault tests (issue 11, cases 6 to 12): the real `jobd run` and
`jobd` CLI as child processes whose `jobd` package comes from the import path, so that a
test can be run against an older checkout of jobd:

    PYTHONPATH=/tmp/jobd-before python -m pytest tests/faults/test_base_exception.py -s

`python -m jobd` (tests.faults.daemon) puts the working directory first on `sys.path`, so
its child always runs the checkout the tests live in. Here the child starts with `-P` (no
such entry) and a short bootstrap: it imports this checkout's `tests` package (the actions
the configurations name), then takes `jobd` from wherever `PYTHONPATH` or the install
points, and logs which one it got (`test.jobd_code`, printed by every test).

    proc = await start_daemon(config, tmp_path / "daemon.log")   # a tests.faults DaemonProc
    done = await run_cli("jobs", "retry", "7", "-c", str(config))  # .code, .out, .err
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.daemon import ROOT, DaemonProc

_BOOT = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import tests.faults  # the actions the configuration names: this checkout's
sys.path.remove({str(ROOT)!r})
import jobd
print(json.dumps({{"event": "test.jobd_code", "file": jobd.__file__}}), file=sys.stderr,
      flush=True)
from jobd.cli.main import main
sys.argv[0] = "jobd"
raise SystemExit(main())
"""


def _command(*args: str) -> list[str]:
    return [sys.executable, "-P", "-c", _BOOT, *args]


def _limit_open_files(limit: int) -> Any:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


async def start_daemon(
    config: Path, log_path: Path, *, open_files: int | None = None
) -> DaemonProc:
    """`jobd run -c config` as a child process (see the module doc); `open_files` sets its
    RLIMIT_NOFILE (1024 is systemd's default)."""
    proc = await asyncio.create_subprocess_exec(
        *_command("run", "-c", str(config)),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=None if open_files is None else _limit_open_files(open_files),
    )
    return DaemonProc(proc, log_path)


@dataclass(frozen=True)
class CliRun:
    """What a `jobd` CLI child did: exit code, output, and which `jobd` it ran."""

    code: int
    out: str
    err: str
    jobd_file: str


async def run_cli(*args: str, timeout_s: float = 30.0) -> CliRun:
    """`jobd ARGS...` as a child process (see the module doc)."""
    proc = await asyncio.create_subprocess_exec(
        *_command(*args),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    assert proc.returncode is not None
    first, _, rest = err.decode(errors="replace").partition("\n")
    return CliRun(proc.returncode, out.decode(errors="replace"), rest, json.loads(first)["file"])


async def jobd_code(daemon: DaemonProc) -> str:
    """The `jobd/__init__.py` the daemon runs (printed by the tests: which code ran)."""
    event = await daemon.wait_event("test.jobd_code", timeout_s=10)
    return str(event["file"])


async def states(conn: Any, worker: str | None = None) -> dict[str, int]:
    """Job count per state (of one worker, when given)."""
    rows = await conn.fetch(
        "SELECT state::text, count(*) FROM jobd.jobs WHERE $1::text IS NULL OR worker = $1"
        " GROUP BY 1",
        worker,
    )
    return {row[0]: int(row[1]) for row in rows}


async def settle(check: Any, timeout_s: float) -> bool:
    """Await `check()` until true or `timeout_s` passed; whether it became true (for a test
    that prints what it measured before asserting)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
