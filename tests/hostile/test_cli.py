"""The CLI's table of hostile invocations, each the real `jobd` as a process against a real
database: bad input exits 2 with a message saying what to do (never "internal error"),
a closed pipe ends a command quietly, and no traceback or password is ever printed."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.support import ROOT, SETUP_SQL, assert_no_leak, config_text, execute, jobd


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str | bytes, ...]  # CFG stands for the config file
    code: int
    needle: str  # in stderr (exit 2) or stdout (exit 0)


CFG = "CFG"
TRIGGER = ("trigger", "orders", "process")
CASES = [
    Case("global -c first", ("-c", CFG, "status"), 0, "leader"),
    Case("global --config=", (f"--config={CFG}", "jobs", "list"), 0, "ID"),
    Case("no such config", ("status", "-c", "/nonexistent/jobd.yaml"), 2, "not found"),
    Case("superscript id", ("jobs", "show", "²"), 2, "positive integer"),
    Case("id beyond bigint", ("jobs", "show", "99999999999999999999"), 2, "at most"),
    Case("retry beyond bigint", ("jobs", "retry", "99999999999999999999"), 2, "at most"),
    Case("superscript limit", ("jobs", "list", "--limit", "²"), 2, "positive integer"),
    Case("huge limit", ("jobs", "list", "--limit", "99999999999999999999"), 2, "limit"),
    Case("queue filter not UTF-8", ("jobs", "list", "--queue", b"\xff\xfe"), 2, "UTF-8"),
    Case("scale unknown queue", ("queues", "scale", "webhookz", "2"), 2, "--create"),
    Case("scale typo", ("queues", "scale", "defualt", "2"), 2, "did you mean 'default'"),
    Case("pause unknown queue", ("queues", "pause", "nosuchqueue"), 2, "--create"),
    Case("resume unknown queue", ("queues", "resume", "nosuchqueue"), 2, "--create"),
    Case("scale 3e9", ("queues", "scale", "default", "3000000000"), 2, "database.pool_size"),
    Case("scale over pool", ("queues", "scale", "default", "50"), 2, "database.pool_size"),
    Case("remove configured", ("queues", "remove", "default"), 2, "configuration"),
    Case("remove unknown", ("queues", "remove", "nosuchqueue"), 2, "unknown queue"),
    Case("create bad name", ("queues", "pause", "a b", "--create"), 2, "queue name"),
    Case("key text for int", (*TRIGGER, "--pk", "abc"), 2, "integer"),
    Case("key fraction", (*TRIGGER, "--pk", "1.5"), 2, "integer"),
    Case("key 1e20", (*TRIGGER, "--pk", "1e20"), 2, "integer"),
    Case("key beyond bigint", (*TRIGGER, "--pk", '{"id": 99999999999999999999}'), 2, "range"),
    Case("key NaN", (*TRIGGER, "--pk", '{"id": NaN}'), 2, "NaN"),
    Case("key not UTF-8", (*TRIGGER, "--pk", b"\xff"), 2, "UTF-8"),
    Case("actor NUL", (*TRIGGER, "--pk", "1", "--actor", '{"n": "\\u0000"}'), 2, "NUL"),
    Case("actor surrogate", (*TRIGGER, "--pk", "1", "--actor", '{"n": "\\ud800"}'), 2, "surrogate"),
    Case("deleted trigger", ("trigger", "orders", "gone", "--pk", "1"), 2, "deleted"),
    Case("deleted scheduler", ("trigger", "orders", "gone"), 2, "deleted"),
    Case("no tenant", ("trigger", "notes", "process", "--pk", "1"), 2, "--tenant"),
    Case("explain no tenant", ("explain", "notes", "process"), 2, "--tenant"),
    Case(
        "tenant not UTF-8",
        ("trigger", "notes", "process", "--pk", "1", "--tenant", b"\xff"),
        2,
        "UTF-8",
    ),
    Case("input NUL", ("schedule", "orders", "nightly", "--input", '{"x": "\\u0000"}'), 2, "NUL"),
]


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Path:
    """The hostile config on a database with its tables, migrated and registered."""
    execute(database_url, SETUP_SQL)
    # Enough queues and jobs that a listing outgrows a pipe's buffer.
    execute(
        database_url,
        "INSERT INTO jobd.jobs (worker, queue, state) "
        "SELECT 'w', 'q' || i, 'completed' FROM generate_series(1, 2000) AS i",
    )
    path = tmp_path / "jobd.yaml"
    path.write_text(config_text(database_url))
    migrated = jobd("migrate", "-c", str(path))
    assert migrated.returncode == 0, migrated.stderr
    return path


def args_for(case: Case, config: Path) -> list[str | bytes]:
    """The case's arguments with CFG replaced by the config file (appended as `-c FILE`
    when the case does not place it itself)."""
    args: list[str | bytes] = []
    for arg in case.args:
        args.append(arg.replace(CFG, str(config)) if isinstance(arg, str) else arg)
    if not any(isinstance(a, str) and CFG in a for a in case.args) and "-c" not in args:
        args += ["-c", str(config)]
    return args


def test_hostile_cli_invocations(config: Path) -> None:
    """Every invocation of the table exits with its code, says what it should (on stderr
    for an error, on stdout otherwise) and prints no traceback, internal error or password."""
    failures = []
    for case in CASES:
        result = jobd(*args_for(case, config))
        out = result.stderr if case.code else result.stdout
        try:
            assert result.returncode == case.code, (result.returncode, result.stderr[-400:])
            assert case.needle in out, (case.needle, out[-400:])
            assert result.stderr.strip() or case.code == 0, "an error says something"
            assert_no_leak(result.stdout + result.stderr, case.name)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}"[:500])
    assert not failures, f"{len(failures)} of {len(CASES)} failed:\n" + "\n".join(failures)
    assert len(CASES) >= 20


@pytest.mark.parametrize(
    "args", [("status",), ("jobs", "list", "--json", "--limit", "2000"), ("queues", "list")]
)
def test_a_closed_pipe_ends_the_command_quietly(config: Path, args: tuple[str, ...]) -> None:
    """`jobd ... | head -1`: the reader goes away after one line; jobd stops writing,
    prints nothing on stderr (no BrokenPipeError) and exits 141 like a Unix tool killed
    by SIGPIPE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBD_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobd", *args, "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""
