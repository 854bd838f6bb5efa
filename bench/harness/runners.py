"""Runner processes: jobd's from the project `.venv`, the peers' from `bench/.venv-peers`.

Each runner is `python -m <module> --dsn URL ...` started from the repository root and
prints one JSON line (see bench/runners/common.py). The peers' virtualenv is created on
first use with Python 3.11 and `pip install -r bench/requirements-peers.txt` (pinned).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = BENCH / "requirements-peers.txt"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
JOBD_PYTHON = ROOT / ".venv" / "bin" / "python"
PIP_TIMEOUT_S = 600


class RunnerFailed(RuntimeError):
    """A runner exited non-zero or printed no result line."""


def ensure_peers_venv() -> Path:
    """The peers' interpreter, creating the virtualenv on first use."""
    if PEERS_PYTHON.exists():
        return PEERS_PYTHON
    base = shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(PEERS_VENV)], check=True, timeout=120)
    subprocess.run(
        [str(PEERS_PYTHON), "-m", "pip", "install", "-q", "-r", str(PEERS_REQUIREMENTS)],
        check=True,
        timeout=PIP_TIMEOUT_S,
    )
    return PEERS_PYTHON


def run(python: Path, module: str, options: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one runner to completion and return its JSON result line."""
    argv = [str(python), "-m", module]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    try:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RunnerFailed(f"{module}: no result within {timeout_s}s") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout)[-2000:]
        raise RunnerFailed(f"{module} exited {done.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    if "error" in result:
        raise RunnerFailed(f"{module}: {result['error']}")
    return result
