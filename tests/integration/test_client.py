"""jobd.Client: every method against a real database, alone and inside the caller's
transaction, and its errors as JobdErrors with message and hint."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobd.client import Client, RowNotFound, UnknownTrigger
from jobd.errors import JobdError, UsageError
from jobd.triggers.sql_api import sync_registry
from tests.integration.test_sql_api import TABLES, spec_of


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[Client]:
    """A connected client on a database with the test tables and a synced registry."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(TABLES)
        await sync_registry(conn, spec_of())
    finally:
        await conn.close()
    async with Client(database_url) as c:
        yield c


async def _jobs(client: Client) -> list[asyncpg.Record]:
    assert client._pool is not None
    return await client._pool.fetch(
        "SELECT id, worker, args::text AS args FROM jobd.jobs ORDER BY id"
    )


async def test_methods(client: Client) -> None:
    """run_trigger (id, then None while pending), run_triggers (ids of new rows only),
    schedule_trigger (scheduler job, None while waiting) and schedule."""
    first = await client.run_trigger("orders", "process", {"id": 1}, actor={"id": 7, "x": 1})
    assert isinstance(first, int)
    assert await client.run_trigger("orders", "process", {"id": 1}) is None
    ids = await client.run_triggers("orders", "process", [{"id": 1}, {"id": 2}, {"id": 3}])
    assert len(ids) == 2
    assert await client.run_triggers("orders", "process", []) == []
    scheduler = await client.schedule_trigger("orders", "process")
    assert scheduler is not None
    assert await client.schedule_trigger("orders", "process") is None
    run = await client.schedule("orders", "nightly", input={"n": 3})
    workers = [r["worker"] for r in await _jobs(client)]
    assert workers == ["orders.process"] * 3 + ["orders.process.scheduler", "orders.nightly"]
    assert run > scheduler
    tenant_job = await client.run_trigger("tenanted", "process", {"id": 2}, tenant="globex")
    assert tenant_job is not None


async def test_inside_the_callers_transaction(client: Client, database_url: str) -> None:
    """With conn= the jobs commit or roll back with the application's transaction, on a
    plain connection and on a jobd pool connection (jsonb codecs set)."""
    from jobd.sql.db import create_pool

    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await client.run_trigger("orders", "process", {"id": 4}, conn=conn)
                await client.run_triggers("orders", "process", [{"id": 5}], conn=conn)
                await client.schedule("orders", "nightly", conn=conn)
                raise RuntimeError("rolled back")
        assert await _jobs(client) == []
        async with conn.transaction():
            await client.run_trigger("orders", "process", {"id": 4}, conn=conn)
            await client.schedule_trigger("orders", "process", conn=conn)
    finally:
        await conn.close()
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as pconn, pconn.transaction():
            assert await client.run_trigger(
                "orders", "process", {"id": 5}, actor={"id": 1}, conn=pconn
            )
    finally:
        await pool.close()
    assert len(await _jobs(client)) == 3


async def test_errors(client: Client) -> None:
    """Unknown triggers raise UnknownTrigger with the hint, a missing row RowNotFound, a
    bad key or tenant a UsageError: all JobdErrors."""
    with pytest.raises(UnknownTrigger, match=r"no trigger 'nope'.*hint: triggers of orders"):
        await client.run_trigger("orders", "nope", {"id": 1})
    with pytest.raises(UnknownTrigger, match="no scheduled action"):
        await client.schedule("orders", "weekly")
    with pytest.raises(RowNotFound):
        await client.run_trigger("orders", "process", {"id": 99})
    with pytest.raises(UsageError, match="exactly id"):
        await client.run_triggers("orders", "process", [{"idd": 1}])
    with pytest.raises(UsageError, match="not multitenant"):
        await client.run_trigger("orders", "process", {"id": 1}, tenant="acme")
    assert issubclass(UnknownTrigger, JobdError)


async def test_connect_and_closed(database_url: str) -> None:
    """Client.connect opens a pool; a closed client and an unreachable server give
    JobdErrors, not driver tracebacks."""
    c = await Client.connect(database_url)
    await c.close()
    with pytest.raises(JobdError, match="closed"):
        await c.run_trigger("orders", "process", {"id": 1})
    with pytest.raises(JobdError, match="cannot connect"):
        await Client.connect("postgresql://postgres@127.0.0.1:1/nothing")
