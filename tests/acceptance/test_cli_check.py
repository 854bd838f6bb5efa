"""`jobd check` and `jobd schema` as a user runs them: a real process, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / "tests" / "data" / "bad_configs"


def jobd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBD_")}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "jobd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**clean, **(env or {})},
        check=False,
    )


def test_check_example_prints_a_one_line_summary() -> None:
    """The example config is valid on a fresh machine: exit 0, one summary line, nothing else."""
    result = jobd("check", "-c", "config.example.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "config.example.yaml: OK: 3 resources, 4 triggers, 2 schedules, 7 queues\n"
    )
    assert result.stderr == ""


def test_check_uses_jobd_config_variable() -> None:
    """Without -c, $JOBD_CONFIG names the file."""
    result = jobd("check", env={"JOBD_CONFIG": "config.example.yaml"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "name",
    [
        "03_yaml_tab_indent",
        "14_unknown_key_trigger",
        "26_bad_cron_fields",
        "37_where_subquery",
        "43_missing_env_var",
        "70_multiple_problems",
    ],
)
def test_check_bad_config_exits_2_with_located_messages(name: str) -> None:
    """A bad file gives exit 2 and its FILE:LINE:COL messages on stderr, no traceback."""
    path = CORPUS / f"{name}.yaml"
    expected = [
        line[len("# expect: ") :]
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]
    result = jobd("check", "-c", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[:-1] == [f"{path}:{e}" for e in expected]
    assert lines[-1].endswith("found")


def test_check_missing_file_is_exit_2_without_traceback(tmp_path: Path) -> None:
    """A missing config file is a clear message and exit 2."""
    result = jobd("check", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2
    assert "configuration file not found" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_schema_prints_the_json_schema() -> None:
    """`jobd schema` prints the 2020-12 JSON Schema, exit 0."""
    result = jobd("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["$schema"].endswith("2020-12/schema")


DB_CONFIG = """
version: 1
database: {{url: "{url}"}}
resources:
  orders:
    table: public.orders
    actions:
      close: {{update: {{set: {{done: true}}}}}}
    triggers:
      close: {{action: close, where: "stauts = 'open'"}}
"""


def test_check_db_reports_missing_tables_and_columns(database_url: str, tmp_path: Path) -> None:
    """`check --db` compares the config with the database: a missing table, then (once it
    exists) unknown columns with a suggestion, exit 2 and no traceback; a match exits 0."""
    import asyncio

    import asyncpg

    config = tmp_path / "jobd.yaml"
    config.write_text(DB_CONFIG.format(url=database_url))
    missing = jobd("check", "--db", "-c", str(config))
    assert missing.returncode == 2, missing.stderr
    assert 'table "public.orders" does not exist' in missing.stderr

    async def create(columns: str) -> None:
        conn = await asyncpg.connect(database_url)
        await conn.execute(f"DROP TABLE IF EXISTS orders; CREATE TABLE orders ({columns})")
        await conn.close()

    asyncio.run(create("id int PRIMARY KEY, status text"))
    wrong = jobd("check", "--db", "-c", str(config))
    assert wrong.returncode == 2
    assert 'unknown column "stauts"; did you mean "status"?' in wrong.stderr
    assert 'unknown column "done"' in wrong.stderr
    assert "Traceback" not in wrong.stderr

    asyncio.run(create("id int PRIMARY KEY, stauts text, done boolean"))
    fine = jobd("check", "--db", "-c", str(config))
    assert fine.returncode == 0, fine.stderr
    assert "(database checked)" in fine.stdout


RESTLESS = """\
version: 1
resources:
  orders:
    table: orders
    actions:
      send: {http: {url: "http://127.0.0.1:9/send"}}
      note_error: {update: {set: {last_error: {error: message}}}}
      mark_failed: {update: {set: {status: failed}}}
      alert: {http: {url: "http://127.0.0.1:9/alert"}}
      own_code: {python: "tests.integration.triggers.actions:record"}
    triggers:
      notes_only: {action: send, where: "status = 'new'", on_error: note_error}
      marks: {action: send, where: "status = 'new'", on_error: mark_failed}
      calls: {action: send, where: "status = 'new'", on_error: alert, discard_cooldown: 10m}
      trusts: {action: send, where: "status = 'new'", on_error: own_code}
"""


def test_check_warns_when_on_error_cannot_make_the_row_stop_matching(tmp_path: Path) -> None:
    """An on_error that cannot change what the where looks at (an update of other
    columns, an http call) is warned about at its file:line:column, with the cooldown
    after which the row runs again; the file stays valid (exit 0). An update of a where
    column and a python on_error are not warned about."""
    path = tmp_path / "jobd.yaml"
    path.write_text(RESTLESS)
    result = jobd("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith(
        f"{path}:12:69: resources.orders.triggers.notes_only.on_error: warning: on_error "
        '\'note_error\' sets only "last_error", but the trigger matches rows on "status"'
    )
    assert "again after each discard_cooldown (1h)" in warnings[0]
    assert warnings[1].startswith(f"{path}:14:64: resources.orders.triggers.calls.on_error:")
    assert "is an http call, which cannot change the row" in warnings[1]
    assert "discard_cooldown (10m)" in warnings[1]
