"""Which jobd code the runner processes run: the working tree (default) or a commit.

Several engineers share one checkout, and the project's `.venv` installs jobd in editable
mode: a runner started from the repository root runs whatever `jobd/` holds right now,
half-done work included. `$JOBD_BENCH_REF` (or `python -m bench ... --jobd-ref REV`)
pins the jobd processes (`jobd run`, the jobd runners) to `jobd/` as committed at REV: it
is extracted once with `git archive` into a directory beside the system's temp files and
put first on the import path (the runner's working directory; `bench` itself still comes
from the checkout, through PYTHONPATH). In-process measurements (`bench.scheduler`) import
jobd into the harness and always use the working tree.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_VAR = "JOBD_BENCH_REF"


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


@cache
def _extract(commit: str) -> Path:
    target = Path(tempfile.gettempdir()) / f"jobd-bench-src-{commit[:12]}"
    if not (target / "jobd" / "__init__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "jobd"],
            capture_output=True,
            check=True,
            timeout=120,
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def ref() -> str:
    return os.environ.get(ENV_VAR, "")


def import_root() -> Path:
    """The directory whose `jobd/` the jobd processes import (the checkout by default)."""
    rev = ref()
    return _extract(_git("rev-parse", "--verify", f"{rev}^{{commit}}")) if rev else ROOT


def env() -> dict[str, str]:
    """The environment of a jobd process: the checkout on PYTHONPATH (for `bench`); run it
    with `import_root()` as its working directory (first on `sys.path` under `-m`)."""
    extra = [str(ROOT)]
    if os.environ.get("PYTHONPATH"):
        extra.append(os.environ["PYTHONPATH"])
    return os.environ | {"PYTHONPATH": os.pathsep.join(extra)}


def describe() -> str:
    """One line for the results: which jobd code ran."""
    rev = ref()
    if rev:
        commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
        return f"jobd/ as committed at {commit[:12]} (`--jobd-ref {rev}`)"
    head = _git("rev-parse", "--short=12", "HEAD")
    dirty = [line for line in _git("status", "--porcelain", "--", "jobd").splitlines() if line]
    if dirty:
        return f"working tree at {head} with {len(dirty)} uncommitted change(s) in jobd/"
    return f"working tree at {head} (jobd/ clean)"
