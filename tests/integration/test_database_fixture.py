"""The test bed itself: each test gets its own real, empty Postgres database."""

from __future__ import annotations

import asyncpg


async def test_fixture_talks_to_a_real_postgres(database_url: str) -> None:
    """Proves the fixture connects to a live server and the database is this test's own."""
    conn = await asyncpg.connect(database_url)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        name = await conn.fetchval("SELECT current_database()")
        await conn.execute("CREATE TABLE probe (id int)")
        await conn.execute("INSERT INTO probe VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM probe") == 1
    finally:
        await conn.close()
    assert int(version) >= 140000
    assert name.startswith("jobd_t_")


async def test_databases_are_isolated(database_url: str) -> None:
    """Proves a table created by another test is not visible here (fresh clone per test)."""
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.probe') IS NOT NULL")
    finally:
        await conn.close()
    assert exists is False
