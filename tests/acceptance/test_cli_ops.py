"""The operator commands as a real process against a test database: jobs, queues,
status, migrate, explain; bad arguments exit 2 with a message and no traceback.

Runs the real CLI, `python -m jobd`, as a subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

ROOT = Path(__file__).parents[2]

CONFIG = """
version: 1
database: {{url: "{url}"}}
resources:
  orders:
    table: orders
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
    triggers:
      process: {{action: work, where: "status = 'new'", scheduler_cron: false}}
queues: {{default: 5}}
"""


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    """A config file naming the test database, with an orders table and two jobs."""

    async def setup() -> None:
        conn = await asyncpg.connect(database_url)
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        await conn.execute("INSERT INTO orders VALUES (1, 'new')")
        await conn.execute(
            "INSERT INTO jobd.jobs (worker, queue, state) VALUES ('w', 'mail', 'available'),"
            " ('w', 'mail', 'discarded')"
        )
        await conn.close()

    asyncio.run(setup())
    path = tmp_path / "jobd.yaml"
    path.write_text(CONFIG.format(url=database_url))
    return path


def jobd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_jobs_commands(config: Path) -> None:
    """list shows an aligned table and JSON; show, retry and cancel change and report."""
    out = jobd("jobs", "list", "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split()[:4] == ["ID", "STATE", "OUTCOME", "QUEUE"]
    rows = json.loads(
        jobd("jobs", "list", "--state", "discarded", "--json", "-c", str(config)).stdout
    )
    assert [r["state"] for r in rows] == ["discarded"]
    job_id = str(rows[0]["id"])
    assert "state" in jobd("jobs", "show", job_id, "-c", str(config)).stdout
    assert jobd("jobs", "retry", job_id, "-c", str(config)).stdout == f"job {job_id}: available\n"
    assert jobd("jobs", "cancel", job_id, "-c", str(config)).stdout == f"job {job_id}: cancelled\n"
    again = jobd("jobs", "cancel", job_id, "-c", str(config))
    assert again.returncode == 1 and "cannot cancel" in again.stderr


def test_queues_status_migrate_explain(config: Path) -> None:
    """queues pause/scale/resume/list, status (listing the job no node can claim), migrate
    and explain exit 0 with output."""
    c = ["-c", str(config)]
    assert jobd("queues", "pause", "mail", *c).stdout.startswith("queue mail: paused")
    assert "limit 3" in jobd("queues", "scale", "default", "3", *c).stdout
    assert "running" in jobd("queues", "resume", "mail", *c).stdout
    listing = jobd("queues", "list", *c)
    assert listing.returncode == 0 and "mail" in listing.stdout
    status = jobd("status", *c)
    assert status.returncode == 0 and "leader:" in status.stdout
    # no daemon runs: the waiting job of worker w is listed as waiting for a node
    waiting = status.stdout.split("waiting for a node", 1)[1].splitlines()
    assert waiting[-1].split() == ["mail", "w", "1"]
    assert jobd("migrate", *c).stdout.splitlines() == [
        "schema jobd: up to date",
        "registry: 1 trigger, 0 schedules (jobd.run_trigger and jobd.run_schedule accept them now)",
    ]
    explain = jobd("explain", "orders", "process", *c)
    assert explain.returncode == 0, explain.stderr
    assert "INSERT" in explain.stdout and "'new'" in explain.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["jobs", "show", "abc"], "positive integer"),
        (["jobs", "list", "--state", "done"], "invalid choice"),
        (["explain", "order", "process"], "did you mean 'orders'"),
        (["trigger", "orders", "process", "--pk", "1", "--actor", "{bad"], "not valid JSON"),
        (["queues", "scale", "mail"], "LIMIT or --reset"),
    ],
)
def test_bad_arguments_exit_2(config: Path, args: list[str], needle: str) -> None:
    """Bad arguments: exit 2, a message saying what is wrong, no traceback."""
    out = jobd(*args, "-c", str(config))
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_database_down_names_host_not_password(tmp_path: Path) -> None:
    """An unreachable database: exit 1, the host named, the password never printed."""
    path = tmp_path / "jobd.yaml"
    path.write_text(CONFIG.format(url="postgresql://u:hunter2@127.0.0.1:1/x"))
    out = jobd("status", "-c", str(path))
    assert out.returncode == 1
    assert "127.0.0.1:1" in out.stderr and "hunter2" not in out.stderr
