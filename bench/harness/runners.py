"""Runner processes: jobd's from the project `.venv`, the peers' from `bench/.venv-peers`
(Python 3.11) or `bench/.venv-peers312` (Python 3.12, for oban-py).

Each runner is `python -m <module> --dsn URL ...` started from the repository root and
prints one JSON line (see bench/runners/common.py). A peers' virtualenv is created on
first use and filled with `pip install -r bench/requirements-<venv>.txt` (pinned).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.harness import source

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_REQUIREMENTS = BENCH / "requirements-peers.txt"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
JOBD_PYTHON = ROOT / ".venv" / "bin" / "python"
PIP_TIMEOUT_S = 600
# venv name -> candidate base interpreters (first that exists wins)
BASE_PYTHONS = {
    "peers": ["python3.11", "/root/.pyenv/versions/3.11.7/bin/python"],
    "peers312": ["python3.12", "/root/.pyenv/versions/3.12.1/bin/python"],
}


class RunnerFailed(RuntimeError):
    """A runner exited non-zero or printed no result line."""


def ensure_peers_venv() -> Path:
    """The 3.11 peers' interpreter, creating the virtualenv on first use."""
    return ensure_venv("peers")


def ensure_venv(name: str) -> Path:
    """`bench/.venv-<name>/bin/python`, created and filled on first use. Raises
    RunnerFailed (with pip's reason) when it cannot be built: the caller reports it."""
    python = BENCH / f".venv-{name}" / "bin" / "python"
    if python.exists():
        return python
    base = next((c for c in BASE_PYTHONS[name] if runs(c)), None)
    if base is None:
        raise RunnerFailed(f"no interpreter for {name}: tried {BASE_PYTHONS[name]}")
    requirements = BENCH / f"requirements-{name}.txt"
    try:
        subprocess.run(
            [base, "-m", "venv", str(python.parents[1])],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
            check=True,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(python.parents[1], ignore_errors=True)
        reason = (exc.stderr or exc.stdout or "")[-1000:]
        raise RunnerFailed(f"{' '.join(map(str, exc.cmd[:3]))}: {reason}") from exc
    return python


def runs(candidate: str) -> bool:
    """The interpreter exists and starts (a pyenv shim for a version not selected fails)."""
    path = shutil.which(candidate) or (candidate if Path(candidate).exists() else None)
    if path is None:
        return False
    done = subprocess.run([path, "-c", "pass"], capture_output=True, timeout=60, check=False)
    return done.returncode == 0


def python_for(venv: str) -> Path:
    """The interpreter of a runner's virtualenv ("jobd" = the project's own)."""
    return JOBD_PYTHON if venv == "jobd" else ensure_venv(venv)


def package_version(python: Path, package: str) -> str:
    """`package`'s installed version in `python`'s environment, or "not installed"."""
    code = f"from importlib.metadata import version; print(version({package!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else "not installed"


def run(python: Path, module: str, options: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one runner to completion and return its JSON result line."""
    argv = [str(python), "-m", module]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    # jobd's runners import jobd from the code the run measures (bench/harness/source.py)
    jobd = python == JOBD_PYTHON
    cwd, env = (source.import_root(), source.env()) if jobd else (ROOT, None)
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
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
