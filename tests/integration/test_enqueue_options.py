"""Enqueue with input, a time and a priority (issue 15) through the SQL functions and
jobd.Client: the job's args, state, scheduled_at and priority; the row's key held from the
insert on; old call forms unchanged; one-off events of scheduled actions; bad options
refused with clear errors; a scheduled job that runs when due with its input; a scheduled
action with `cron: false` for one-off events only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from jobd.client import Client, UnknownTrigger
from jobd.config import load_config_text
from jobd.errors import ConfigError, UsageError
from jobd.testing import JobdTest
from jobd.triggers.jobs import cron_entries
from tests.integration import test_client, test_sql_api
from tests.integration.test_sql_api import CONFIG, HEADER, TABLES
from tests.integration.triggers import actions

# Fixtures: a jobd pool (test_sql_api) and a client (test_client) on a database with the
# test tables and the registry of test_sql_api's CONFIG.
pool = test_sql_api.pool
client = test_client.client


async def job(pool: Any, job_id: int) -> dict[str, Any]:
    """The job's state, priority, args (parsed: the client's pool has no jsonb codec),
    delay until scheduled_at and unique key."""
    sql = (
        "SELECT state::text, priority, args::text, scheduled_at - now() AS delay, uniq_key"
        " FROM jobd.jobs WHERE id = $1"
    )
    row = dict(await pool.fetchrow(sql, job_id))
    row["args"] = json.loads(row["args"])
    return row


async def test_sql_run_trigger_with_options_holds_the_key(pool: Any) -> None:
    """run_trigger with input, schedule_in and priority inserts a `scheduled` job with the
    input merged over action_input, scheduled_at = now + schedule_in and that priority;
    its unique key is held at once, so a second run_trigger (and run_triggers) for the row
    gets none; the old five-argument call form still works."""
    job_id = await pool.fetchval(
        "SELECT jobd.run_trigger('orders', 'process', '{\"id\": 1}', input => '{\"tone\": 1}',"
        " schedule_in => '10m', priority => 0)"
    )
    row = await job(pool, job_id)
    assert row["state"] == "scheduled" and row["priority"] == 0
    assert row["args"]["input"] == {"mode": "fast", "tone": 1}
    assert timedelta(minutes=9) < row["delay"] <= timedelta(minutes=10)
    assert row["uniq_key"] == "orders.process::[1]"
    assert (
        await pool.fetchval("SELECT jobd.run_trigger('orders', 'process', '{\"id\": 1}')") is None
    )
    ids = await pool.fetchval(
        "SELECT jobd.run_triggers('orders', 'process', '[{\"id\": 1}, {\"id\": 2}]', NULL, NULL,"
        " '{\"tone\": 2}', NULL, now() + interval '1 hour', 9)"
    )
    assert len(ids) == 1
    second = await job(pool, ids[0])
    assert (second["state"], second["priority"]) == ("scheduled", 9)
    assert timedelta(minutes=59) < second["delay"] <= timedelta(hours=1)
    plain = await pool.fetchval(
        "SELECT jobd.run_trigger('orders', 'process', '{\"id\": 3}', NULL, NULL)"
    )
    third = await job(pool, plain)
    assert (third["state"], third["priority"]) == ("available", 3)
    assert third["args"]["input"] == {"mode": "fast"}


async def test_sql_one_off_event_of_a_scheduled_action(pool: Any) -> None:
    """run_schedule with scheduled_at is a one-off event: one `scheduled` run at that time
    with the input merged over action_input, its priority given; a schedule_in of zero is
    available at once."""
    at = datetime.now(UTC) + timedelta(days=1)
    job_id = await pool.fetchval(
        "SELECT jobd.run_schedule('orders', 'nightly', '{\"n\": 2}', scheduled_at => $1,"
        " priority => 1)",
        at,
    )
    row = await job(pool, job_id)
    assert (row["state"], row["priority"]) == ("scheduled", 1)
    assert row["args"]["input"] == {"period": "day", "n": 2}
    scheduled_at = await pool.fetchval("SELECT scheduled_at FROM jobd.jobs WHERE id = $1", job_id)
    assert scheduled_at == at
    now_id = await pool.fetchval(
        "SELECT jobd.run_schedule('orders', 'nightly', schedule_in => '0s')"
    )
    assert (await job(pool, now_id))["state"] == "available"


@pytest.mark.parametrize(
    ("call", "sqlstate", "needle"),
    [
        (
            "run_trigger('orders', 'process', '{\"id\": 1}', input => '[1]')",
            "22023",
            "input must be a JSON object, got array",
        ),
        (
            "run_trigger('orders', 'process', '{\"id\": 1}', priority => 10)",
            "22023",
            "priority must be 0 (highest) to 9, got 10",
        ),
        (
            "run_triggers('orders', 'process', '[{\"id\": 1}]', priority => -1)",
            "22023",
            "priority must be 0",
        ),
        (
            "run_trigger('orders', 'process', '{\"id\": 1}', schedule_in => '1m',"
            " scheduled_at => now() + interval '1h')",
            "22023",
            "not both",
        ),
        (
            "run_trigger('orders', 'process', '{\"id\": 1}',"
            " scheduled_at => now() - interval '1s')",
            "22023",
            "is in the past",
        ),
        (
            "run_schedule('orders', 'nightly', scheduled_at => '2020-01-01Z')",
            "22023",
            "is in the past",
        ),
        (
            "run_schedule('orders', 'nightly', schedule_in => '-5m')",
            "22023",
            "must not be negative",
        ),
        (
            "run_schedule('orders', 'nightly', schedule_in => '10 parsecs')",
            "22007",
            "invalid input syntax for type interval",
        ),
        ("run_schedule('orders', 'nightly', '\"x\"')", "22023", "input must be a JSON object"),
        ("run_trigger('orders', 'process', input => '{}')", "22023", "give primary_key"),
        (
            "run_trigger('orders', 'proces', '{\"id\": 1}', schedule_in => '1m')",
            "42704",
            "has no trigger 'proces'",
        ),
    ],
)
async def test_sql_bad_options_are_refused(
    pool: Any, call: str, sqlstate: str, needle: str
) -> None:
    """Each bad option raises its SQLSTATE with a message that names the mistake, and no
    job is inserted."""
    with pytest.raises(asyncpg.PostgresError) as raised:
        await pool.fetchval(f"SELECT jobd.{call}")
    assert raised.value.sqlstate == sqlstate
    assert needle in str(raised.value)
    assert await pool.fetchval("SELECT count(*) FROM jobd.jobs") == 0


async def test_client_options(client: Client) -> None:
    """The client passes input, schedule_in (a duration text, seconds or a timedelta),
    scheduled_at (a datetime or ISO text) and priority to the functions: run_trigger,
    run_triggers and schedule make scheduled jobs with them."""
    assert client._pool is not None
    first = await client.run_trigger(
        "orders", "process", {"id": 1}, input={"a": 1}, schedule_in="2h", priority=5
    )
    assert first is not None
    row = await job(client._pool, first)
    assert (row["state"], row["priority"], row["args"]["input"]) == (
        "scheduled",
        5,
        {"mode": "fast", "a": 1},
    )
    assert timedelta(minutes=119) < row["delay"] <= timedelta(hours=2)
    assert await client.run_trigger("orders", "process", {"id": 1}) is None  # key held
    ids = await client.run_triggers(
        "orders", "process", [{"id": 2}, {"id": 3}], schedule_in=timedelta(seconds=90)
    )
    assert [(await job(client._pool, i))["state"] for i in ids] == ["scheduled"] * 2
    at = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    event = await client.schedule("orders", "nightly", input={"n": 7}, scheduled_at=at)
    row = await job(client._pool, event)
    assert row["state"] == "scheduled" and row["args"]["input"] == {"period": "day", "n": 7}
    soon = await client.run_trigger("orders", "process", {"id": 4}, schedule_in=0)
    assert soon is not None and (await job(client._pool, soon))["state"] == "available"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"schedule_in": "10x"}, "schedule_in '10x' is not a duration (e.g. 30s, 10m"),
        ({"schedule_in": -3}, "not a duration"),
        ({"schedule_in": timedelta(seconds=-1)}, "must not be negative"),
        ({"scheduled_at": "tomorrow"}, "scheduled_at 'tomorrow' is not a timestamp (ISO 8601"),
        ({"scheduled_at": "2030-01-01T10:00:00"}, "has no timezone"),
        ({"scheduled_at": datetime(2020, 1, 1, tzinfo=UTC)}, "is in the past"),
        ({"schedule_in": "1m", "scheduled_at": "2030-01-01T00:00Z"}, "not both"),
        ({"input": [1, 2]}, "input must be a JSON object, got list"),
        ({"priority": 12}, "priority must be 0 (highest) to 9, got 12"),
        ({"priority": True}, "must be an integer"),
    ],
)
async def test_client_bad_options_raise_usage_error(
    client: Client,
    kwargs: dict[str, Any],
    needle: str,
) -> None:
    """Each bad option raises UsageError naming it and what is accepted, in run_trigger,
    run_triggers and schedule alike; no job is inserted."""
    calls = [
        client.run_trigger("orders", "process", {"id": 1}, **kwargs),
        client.run_triggers("orders", "process", [{"id": 1}], **kwargs),
        client.schedule("orders", "nightly", **kwargs),
    ]
    for call in calls:
        with pytest.raises(UsageError) as raised:
            await call
        assert needle in str(raised.value)
    assert client._pool is not None
    assert await client._pool.fetchval("SELECT count(*) FROM jobd.jobs") == 0


async def test_client_unknown_names_say_did_you_mean(client: Client) -> None:
    """An unknown trigger, scheduled action or resource raises UnknownTrigger with the
    closest known name."""
    with pytest.raises(UnknownTrigger, match="has no trigger 'proces'; did you mean 'process'"):
        await client.run_trigger("orders", "proces", {"id": 1}, schedule_in="1m")
    with pytest.raises(UnknownTrigger, match="did you mean 'nightly'"):
        await client.schedule("orders", "nigthly", scheduled_at="2030-01-01T00:00Z")
    with pytest.raises(UnknownTrigger, match=r"unknown resource 'order'.*did you mean 'orders'"):
        await client.run_triggers("order", "process", [{"id": 1}])


async def _start_clean(database_url: str) -> None:
    """The test tables in the database, and no recorded action calls."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLES)
    finally:
        await conn.close()
    actions.reset()


async def _run_when_due(jobd: JobdTest) -> list[str]:
    """Nothing runs before its time; then, the time come, the states of what ran."""
    assert (await jobd.drain()).jobs == ()
    await jobd.pool.execute("UPDATE jobd.jobs SET scheduled_at = now() - interval '1s'")
    return sorted(j.state for j in (await jobd.drain()).jobs)


async def test_scheduled_jobs_run_when_due_with_their_input(database_url: str) -> None:
    """A delayed trigger job and a one-off event do not run before their time; once it has
    come they run, and the action sees the input merged over action_input (ctx.input)."""
    await _start_clean(database_url)
    async with await JobdTest.start(HEADER + CONFIG, database_url, env={}) as jobd:
        await jobd.client.run_trigger(
            "orders", "process", {"id": 1}, input={"x": 1}, schedule_in="1h"
        )
        await jobd.client.schedule("orders", "nightly", input={"n": 5}, schedule_in="1h")
        assert await _run_when_due(jobd) == ["completed", "completed"]
    inputs = sorted(
        (c["input"] for c in actions.CALLS), key=lambda i: json.dumps(i, sort_keys=True)
    )
    assert inputs == [{"mode": "fast", "x": 1}, {"n": 5, "period": "day"}]


EVENTS_ONLY = """
version: 1
database: {url: "postgresql://unused"}
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    scheduled_actions:
      remind: {action: work, cron: false, action_input: {tone: mild}}
"""


async def test_an_events_only_scheduled_action_has_no_ticks(database_url: str) -> None:
    """`cron: false` makes a scheduled action with no cron entry (no ticks) that one-off
    events still run, with their input; `cron: true` is refused by name."""
    await _start_clean(database_url)
    spec = load_config_text(EVENTS_ONLY, "events.yaml", env={})
    assert spec.resources["orders"].scheduled_actions["remind"].cron is None
    assert cron_entries(spec) == ()
    async with await JobdTest.start(EVENTS_ONLY, database_url, env={}) as jobd:
        await jobd.client.schedule("orders", "remind", input={"to": 7}, schedule_in="10m")
        assert await _run_when_due(jobd) == ["completed"]
    assert [c["input"] for c in actions.CALLS] == [{"tone": "mild", "to": 7}]
    with pytest.raises(ConfigError) as raised:
        load_config_text(EVENTS_ONLY.replace("cron: false", "cron: true"), "bad.yaml", env={})
    assert "must be a cron expression or false" in str(raised.value.problems)
