#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python: `python3 dev.py run|test|lint`.

It creates `.venv` on first use (and again when pyproject.toml changes), installs jobd
with its `dev` extra into it, then runs the command inside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".jobd-installed"


def ensure_venv() -> None:
    """Create the virtualenv and install jobd[dev] unless it is already up to date."""
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("dev.py: installing jobd[dev] into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # The distribution was called `jobd` before it took the free name `pgjobd` (the import
    # package and the command kept theirs): an old editable install would shadow its
    # metadata, so it goes first.
    if _installed("jobd"):
        subprocess.run([*pip[:3], "uninstall", "-y", "-q", "jobd"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.touch()


def _installed(distribution: str) -> bool:
    probe = f"import importlib.metadata as m; m.distribution({distribution!r})"
    return subprocess.run([str(BIN / "python"), "-c", probe], capture_output=True).returncode == 0


def run(argv: list[str]) -> int:
    """Run a command to its end. Ctrl-C is passed on to it (a terminal sends it to both of
    us anyway) and we wait for its graceful stop instead of dying with a traceback."""
    proc = subprocess.Popen(argv, cwd=ROOT)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)


def main(args: list[str]) -> int:
    command, rest = (args[0], args[1:]) if args else ("help", [])
    if command == "run":
        ensure_venv()
        return run([str(BIN / "jobd"), "demo", "-c", "config.example.yaml", *rest])
    if command == "test":
        ensure_venv()
        code = run([str(BIN / "python"), "-m", "pytest", *rest])
        if code == 5:  # pytest found no test: that is a failure, not a pass
            print("dev.py: pytest collected no tests", file=sys.stderr)
            return 1
        return code
    if command == "lint":
        ensure_venv()
        checks = [
            [str(BIN / "ruff"), "check", "."],
            [str(BIN / "ruff"), "format", "--check", "."],
            [str(BIN / "mypy"), "--strict", "jobd"],
            [str(BIN / "lint-imports"), "--no-cache"],
        ]
        return next((code for code in map(run, checks) if code), 0)
    if command == "venv":
        ensure_venv()
        return 0
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
