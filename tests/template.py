"""What the per-session template database contains; every test database is a clone of it."""

from __future__ import annotations

import asyncpg

from jobd.sql.migrate import migrate


async def prepare(url: str) -> None:
    """Install jobd's schema (default name `jobd`) in the template database at `url`."""
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, "jobd")
    finally:
        await conn.close()
