"""`jobd trigger` and `jobd schedule` with --input, --schedule-in / --scheduled-at and
--priority (issue 15) as a real process: delayed jobs and one-off events, listed and
cancelled with `jobd jobs`; every bad option exits 2 with a message and no traceback."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
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
      work: {{python: "tests.integration.triggers.actions:record"}}
    triggers:
      process: {{action: work, scheduler_cron: false, action_input: {{mode: fast}}}}
    scheduled_actions:
      report: {{action: work, cron: "@daily", action_input: {{period: day}}}}
queues: {{default: 5}}
"""


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> list[str]:
    """`-c FILE` of a config naming the test database, with orders rows 1 and 2, migrated
    with it (as a deploy does before the first enqueue)."""

    async def setup() -> None:
        conn = await asyncpg.connect(database_url)
        await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)")
        await conn.execute("INSERT INTO orders VALUES (1, 'new'), (2, 'new')")
        await conn.close()

    asyncio.run(setup())
    path = tmp_path / "jobd.yaml"
    path.write_text(CONFIG.format(url=database_url))
    migrated = jobd("migrate", "-c", str(path))  # the registry the SQL functions read
    assert migrated.returncode == 0, migrated.stderr
    return ["-c", str(path)]


def test_delayed_jobs_and_one_off_events(config: list[str]) -> None:
    """trigger --pk with options enqueues a scheduled job that holds the row (a second run
    skips it); schedule --scheduled-at is a one-off event with its input, listed by
    `jobs list --state scheduled --worker`, cancelled by `jobs cancel` and shown with
    that outcome by `jobs show`."""
    options = ["--input", '{"tone": "firm"}', "--schedule-in", "10m", "--priority", "1"]
    out = jobd("trigger", "orders", "process", "--pk", "1", *options, *config)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("orders.process: 1 job(s) enqueued [")
    assert out.stdout.rstrip().endswith(", scheduled in 10m")
    again = jobd("trigger", "orders", "process", "--pk", "1", *config)
    assert "0 job(s) enqueued, 1 skipped" in again.stdout
    at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    event = jobd(
        "schedule", "orders", "report", "--input", '{"to": "ops"}', "--scheduled-at", at, *config
    )
    assert event.returncode == 0, event.stderr
    assert event.stdout.rstrip().endswith(f"enqueued, scheduled at {at}")
    listed = jobd(
        "jobs", "list", "--state", "scheduled", "--worker", "orders.report", "--json", *config
    )
    rows = json.loads(listed.stdout)
    assert len(rows) == 1
    job_id = str(rows[0]["id"])
    assert jobd("jobs", "cancel", job_id, *config).stdout == f"job {job_id}: cancelled\n"
    shown = json.loads(jobd("jobs", "show", job_id, "--json", *config).stdout)
    assert shown["state"] == "cancelled"
    assert shown["args"]["input"] == {"period": "day", "to": "ops"}
    trigger_job = json.loads(
        jobd("jobs", "list", "--worker", "orders.process", "--json", *config).stdout
    )[0]
    assert (trigger_job["state"], trigger_job["priority"]) == ("scheduled", 1)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trigger", "orders", "proces", "--pk", "1"], "did you mean 'process'"),
        (["schedule", "orders", "reprot"], "did you mean 'report'"),
        (
            ["trigger", "orders", "process", "--pk", "1", "--schedule-in", "10x"],
            "is not a duration",
        ),
        (["schedule", "orders", "report", "--scheduled-at", "2020-01-01T00:00Z"], "is in the past"),
        (["schedule", "orders", "report", "--scheduled-at", "noon"], "is not a timestamp"),
        (
            [
                "trigger",
                "orders",
                "process",
                "--pk",
                "1",
                "--schedule-in",
                "1m",
                "--scheduled-at",
                "2030-01-01T00:00Z",
            ],
            "not both",
        ),
        (["trigger", "orders", "process", "--pk", "1", "--input", "[1]"], "must be a JSON object"),
        (["schedule", "orders", "report", "--priority", "10"], "priority must be 0 (highest) to 9"),
        (["schedule", "orders", "report", "--priority", "high"], "invalid int value"),
        (["trigger", "orders", "process", "--schedule-in", "1m"], "need --pk"),
    ],
)
def test_bad_options_exit_2(config: list[str], args: list[str], needle: str) -> None:
    """Each bad option: exit 2, a message naming the mistake, no traceback, no job."""
    out = jobd(*args, *config)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.startswith("jobd: ") and "jobd: jobd:" not in out.stderr
    assert json.loads(jobd("jobs", "list", "--json", *config).stdout) == []
