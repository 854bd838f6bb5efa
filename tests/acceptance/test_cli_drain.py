"""`jobd drain` as a user runs it (the real CLI as a subprocess, a test database): the
schedulers once, every job to completion, a summary, and an exit status a CI can use."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.acceptance.test_cli_ops import jobd

CONFIG = """
version: 1
database: {{url: "{url}"}}
resources:
  orders:
    table: orders
    actions:
      work: {{python: "tests.integration.triggers.actions:record", }}
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process:
        action: work
        where: "status = 'new'"
        on_success: done
        action_input: {{fail_on: [{fail_on}]}}
        max_attempts: 1
      later: {{action: work, where: "status = 'later'", queue: slow}}
queues: {{default: 5, slow: 1}}
"""


def write(tmp_path: Path, url: str, fail_on: str = "") -> Path:
    async def setup() -> None:
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        await conn.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 5) g")
        await conn.execute("INSERT INTO orders VALUES (6, 'later')")
        await conn.close()

    asyncio.run(setup())
    path = tmp_path / "jobd.yaml"
    path.write_text(CONFIG.format(url=url, fail_on=fail_on))
    return path


def statuses(url: str) -> dict[int, str]:
    async def read() -> dict[int, str]:
        conn = await asyncpg.connect(url)
        rows = await conn.fetch("SELECT id, status FROM orders ORDER BY id")
        await conn.close()
        return {r["id"]: r["status"] for r in rows}

    return asyncio.run(read())


def test_drain_runs_the_schedulers_and_every_job_then_exits_0(
    tmp_path: Path, database_url: str
) -> None:
    """Proves one `jobd drain` scans every trigger once and runs all their jobs to the
    end (on_success applied), prints the counts, and exits 0."""
    result = jobd("drain", "-c", str(write(tmp_path, database_url)))
    assert result.returncode == 0, result.stderr
    assert "scheduler runs enqueued: 2" in result.stdout
    assert "jobs run: 8" in result.stdout  # 2 scheduler runs, 5 + 1 rows
    assert "completed 8" in result.stdout
    assert statuses(database_url) == {
        1: "done",
        2: "done",
        3: "done",
        4: "done",
        5: "done",
        6: "later",
    }
    assert "Traceback" not in result.stderr


def test_drain_of_one_trigger_leaves_the_others_and_a_failure_exits_1(
    tmp_path: Path, database_url: str
) -> None:
    """Proves `--trigger R.T` runs only that trigger's scheduler and jobs, and that a job
    whose attempt failed makes the exit status 1 with the job and its error listed."""
    config = write(tmp_path, database_url, fail_on="3")
    result = jobd("drain", "-c", str(config), "--trigger", "orders.process")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "scheduler runs enqueued: 1" in result.stdout
    assert "discarded 1" in result.stdout
    assert "orders.process: discarded (RuntimeError: boom on row 3)" in result.stdout
    assert statuses(database_url)[3] == "new" and statuses(database_url)[1] == "done"
    again = jobd("drain", "-c", str(config), "--no-schedule", "--queue", "slow")
    assert again.returncode == 0 and "jobs run: 0" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trigger", "orders"], "write it as RESOURCE.TRIGGER"),
        (["--trigger", "orders.proces"], "did you mean 'process'"),
        (["--trigger", "order.process"], "unknown resource 'order'"),
        (["--timeout", "0"], "--timeout must be a positive number"),
    ],
)
def test_bad_arguments_exit_2_with_what_to_do(
    tmp_path: Path, database_url: str, args: list[str], message: str
) -> None:
    """Proves each bad argument is a usage error (exit 2) naming the fix, no traceback,
    and nothing ran."""
    result = jobd("drain", "-c", str(write(tmp_path, database_url)), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert set(statuses(database_url).values()) == {"new", "later"}
