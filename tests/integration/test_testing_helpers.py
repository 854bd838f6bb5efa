"""jobd.testing and its pytest plugin, as a user's suite meets them: the fixtures give a
migrated fresh database, the helpers refuse bad names with what exists, assertions say
what they found, and docs/testing.md shows exactly the sample suite that runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobd.errors import ConfigError, JobdError
from jobd.testing import JobdTest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
version: 1
resources:
  items:
    table: items
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process: {action: work, where: "done IS NOT TRUE", scheduler_cron: "* * * * *"}
"""


@pytest.fixture
async def items(jobd_database_url: str) -> str:
    conn = await asyncpg.connect(jobd_database_url)
    await conn.execute("CREATE TABLE items (id int PRIMARY KEY, done boolean)")
    await conn.execute("INSERT INTO items VALUES (1, false), (2, true)")
    await conn.close()
    return jobd_database_url


async def test_the_database_fixture_is_fresh_and_migrated(jobd_database_url: str) -> None:
    """Proves `jobd_database_url` names a database of its own with jobd's tables."""
    conn = await asyncpg.connect(jobd_database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM jobd.jobs") == 0
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("jobd_test_")
    finally:
        await conn.close()


async def test_unknown_names_are_refused_with_what_exists(items: str, jobd_start: Any) -> None:
    """Proves a misspelt resource or trigger raises a JobdError naming the known ones,
    in every helper that takes them."""
    jobd: JobdTest = await jobd_start(CONFIG)
    with pytest.raises(JobdError, match="unknown resource 'item'; known: items"):
        await jobd.assert_would_schedule("item", "process", {"id": 1})
    with pytest.raises(JobdError, match="has no trigger 'proces'; known: process"):
        await jobd.assert_triggered("items", "proces", {"id": 1})
    with pytest.raises(JobdError, match="unknown resource 'nope'"):
        await jobd.schedule_triggers("nope")


async def test_assertions_say_what_they_found(items: str, jobd_start: Any) -> None:
    """Proves each assertion's message names the row and the reason: no match, the job
    that holds it, the jobs it has."""
    jobd: JobdTest = await jobd_start(CONFIG)
    with pytest.raises(AssertionError, match=r"row id=2: the row does not exist or does not"):
        await jobd.assert_would_schedule("items", "process", {"id": 2})
    with pytest.raises(AssertionError, match=r"row id=1 has no job \(its jobs: none\)"):
        await jobd.assert_triggered("items", "process", {"id": 1})
    await jobd.client.run_trigger("items", "process", {"id": 1})
    with pytest.raises(AssertionError, match=r"a job holds it: \d+ \(available\)"):
        await jobd.assert_would_schedule("items", "process", {"id": 1})
    with pytest.raises(
        AssertionError, match=r"has no job in state 'completed' \(its jobs: \d+: available\)"
    ):
        await jobd.assert_triggered("items", "process", {"id": 1}, state="completed")
    ran = await jobd.drain()
    assert [j.pk for j in ran.of("items", "process")] == [{"id": 1}]
    with pytest.raises(AssertionError, match=r"has jobs \(\d+: completed\)"):
        await jobd.refute_triggered("items", "process", {"id": 1})


async def test_a_bad_configuration_is_a_config_error(jobd_database_url: str) -> None:
    """Proves a configuration with a mistake raises ConfigError with its line and key."""
    with pytest.raises(ConfigError) as raised:
        await JobdTest.start(CONFIG.replace("table: items", "tabel: items"), jobd_database_url)
    assert "tabel" in str(raised.value.problems)


def test_docs_show_the_sample_suite_that_runs() -> None:
    """Proves docs/testing.md's worked example is the sample suite itself, character for
    character (so the example in the docs is the one CI runs)."""
    docs = (ROOT / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n# (tests/user_suite/\S+)\n(.*?)```", docs, re.S)
    assert {name for name, _ in blocks} == {
        "tests/user_suite/conftest.py",
        "tests/user_suite/test_example_triggers.py",
    }
    for name, text in blocks:
        assert text == (ROOT / name).read_text(), f"docs/testing.md differs from {name}"
