"""The SQL API's table of hostile calls (`jobd.run_trigger`, `run_triggers`,
`run_schedule`) on a real database: each is refused with its SQLSTATE and a message
saying what is wrong, inserts nothing, and leaves every table as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from jobd.config import load_config_text
from jobd.triggers.sql_api import sync_registry
from tests.hostile.support import SETUP_SQL, config_text


@dataclass(frozen=True)
class Case:
    name: str
    sql: str
    args: tuple[Any, ...]
    sqlstate: str
    needle: str


RUN = "SELECT jobd.run_trigger($1, $2, $3::jsonb, $4::jsonb, $5)"
MANY = "SELECT jobd.run_triggers($1, $2, $3::jsonb, $4::jsonb, $5)"
SCHEDULE = "SELECT jobd.run_schedule($1, $2, $3::jsonb, $4::jsonb, $5)"
EVIL = 'acme"; DROP SCHEMA public; --'
CASES = [
    Case(
        "unknown resource",
        RUN,
        ("order", "process", '{"id": 1}', None, None),
        "42704",
        "unknown resource",
    ),
    Case(
        "unknown trigger", RUN, ("orders", "proces", '{"id": 1}', None, None), "42704", "no trigger"
    ),
    Case("deleted trigger", RUN, ("orders", "gone", '{"id": 1}', None, None), "42704", "deleted"),
    Case("deleted scheduler", RUN, ("orders", "gone", None, None, None), "42704", "deleted"),
    Case(
        "key text for int",
        RUN,
        ("orders", "process", '{"id": "abc"}', None, None),
        "22P02",
        "integer",
    ),
    Case("key fraction", RUN, ("orders", "process", '{"id": 1.5}', None, None), "22P02", "integer"),
    Case("key 1e20", RUN, ("orders", "process", '{"id": 1e20}', None, None), "22003", "integer"),
    Case(
        "key wrong column",
        RUN,
        ("orders", "process", '{"x": 1}', None, None),
        "22023",
        "primary key must name",
    ),
    Case(
        "key not an object", RUN, ("orders", "process", "[1]", None, None), "22023", "primary key"
    ),
    Case("no such row", RUN, ("orders", "process", '{"id": 99}', None, None), "P0002", "no row"),
    Case(
        "actor not an object",
        RUN,
        ("orders", "process", '{"id": 1}', '"admin"', None),
        "22023",
        "actor",
    ),
    Case(
        "tenant not expected",
        RUN,
        ("orders", "process", '{"id": 1}', None, "acme"),
        "22023",
        "not multitenant",
    ),
    Case("tenant missing", RUN, ("notes", "process", '{"id": 1}', None, None), "22023", "tenant"),
    Case("evil tenant", RUN, ("notes", "process", '{"id": 1}', None, EVIL), "22023", "tenant"),
    Case(
        "keys not an array", MANY, ("orders", "process", '{"id": 1}', None, None), "22023", "array"
    ),
    Case(
        "keys of text", MANY, ("orders", "process", '[{"id": "x"}]', None, None), "22P02", "integer"
    ),
    Case(
        "input not an object", SCHEDULE, ("orders", "nightly", "[1]", None, None), "22023", "input"
    ),
    Case("unknown schedule", SCHEDULE, ("orders", "nigthly", None, None, None), "42704", "nightly"),
    Case(
        "schedule tenant",
        SCHEDULE,
        ("orders", "nightly", None, None, "acme"),
        "22023",
        "not multitenant",
    ),
]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a database with the hostile tables and the registry written."""
    connection = await asyncpg.connect(database_url)  # JSON goes in as text
    await connection.execute(SETUP_SQL)
    await sync_registry(connection, load_config_text(config_text(database_url), "t.yaml", env={}))
    yield connection
    await connection.close()


async def test_hostile_sql_calls(conn: asyncpg.Connection) -> None:
    """Each call of the table raises its SQLSTATE with the expected words (the message
    says what is wrong, in jobd's words where jobd checks); no job is inserted and the
    tables are intact."""
    failures = []
    for case in CASES:
        try:
            async with conn.transaction():
                await conn.fetchval(case.sql, *case.args)
            failures.append(f"{case.name}: no error")
        except asyncpg.PostgresError as exc:
            text = f"{exc} {getattr(exc, 'hint', '') or ''}"
            if exc.sqlstate != case.sqlstate or case.needle not in text:
                failures.append(f"{case.name}: {exc.sqlstate} {text}")
    assert not failures, "\n".join(failures)
    assert await conn.fetchval("SELECT count(*) FROM jobd.jobs") == 0
    assert await conn.fetchval("SELECT count(*) FROM public.orders") == 2
    assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")
