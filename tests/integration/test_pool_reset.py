"""jobd's pool resets a connection on release only when user code had it (issue 13: the
reset query was one more round trip after each of jobd's own statements)."""

from __future__ import annotations

from jobd.sql.db import create_pool, lend


async def test_only_a_lent_connection_is_reset_on_release(database_url: str) -> None:
    """Proves session state a python action leaves on `ctx.conn` (a lent connection) is
    gone when the pool hands the connection out again, an open transaction is rolled back,
    and jobd's own use skips the reset (the state it never sets stays, no round trip)."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'own use'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "own use"
            lend(conn)
            await conn.execute("SET application_name = 'user code'")
            await conn.execute("SELECT pg_advisory_lock(42)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "jobd"
            held = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42"
            assert await conn.fetchval(held) == 0
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_open (x int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            gone = "SELECT to_regclass('pg_temp.left_open') IS NULL"
            assert await conn.fetchval(gone)
    finally:
        await pool.close()
