"""Insert: bulk, scheduled, unique keys under concurrency, notifications, transactions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from jobd.engine.insert import INSERT_CHANNEL, insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.sql.db import connect


async def test_bulk_insert_returns_ids_and_stores_fields(pool: Any) -> None:
    """Proves one call inserts many jobs with every field kept, and returns their ids."""
    specs = [
        JobSpec("w", {"n": 1}, queue="q1", priority=3, max_attempts=4, tags=("a", "b")),
        JobSpec("w", {"n": 2}, meta={"k": [1, 2]}),
    ]
    async with pool.acquire() as conn:
        ids = await insert_jobs(conn, specs)
    assert len(ids) == 2
    rows = await pool.fetch("SELECT * FROM jobd.jobs ORDER BY id")
    assert [r["id"] for r in rows] == ids
    first, second = rows
    assert (first["queue"], first["priority"], first["max_attempts"]) == ("q1", 3, 4)
    assert first["args"] == {"n": 1} and first["tags"] == ["a", "b"]
    assert first["state"] == "available" and first["attempt"] == 0
    assert second["meta"] == {"k": [1, 2]} and second["queue"] == "default"


async def test_future_scheduled_at_makes_a_scheduled_job(pool: Any) -> None:
    """Proves a job scheduled in the future is `scheduled`, one in the past `available`."""
    later = datetime.now(UTC) + timedelta(hours=1)
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    async with pool.acquire() as conn:
        ids = await insert_jobs(
            conn, [JobSpec("w", scheduled_at=later), JobSpec("w", scheduled_at=earlier)]
        )
    states = dict(await pool.fetch("SELECT id, state::text FROM jobd.jobs"))
    assert states == {ids[0]: "scheduled", ids[1]: "available"}


async def test_unique_key_conflicts_return_no_id(pool: Any) -> None:
    """Proves a second job with the key of an incomplete job is skipped (also within one
    batch), and that a completed job without a hold no longer blocks its key."""
    async with pool.acquire() as conn:
        first = await insert_jobs(conn, [JobSpec("w", uniq_key="k"), JobSpec("w", uniq_key="k")])
        again = await insert_jobs(conn, [JobSpec("w", uniq_key="k")])
        assert len(first) == 1 and again == []
        await conn.execute("UPDATE jobd.jobs SET state = 'completed', uniq_key = NULL")
        after = await insert_jobs(conn, [JobSpec("w", uniq_key="k")])
    assert len(after) == 1


async def test_concurrent_inserters_of_one_key_make_exactly_one_row(
    pool: Any, database_url: str
) -> None:
    """Proves 20 inserters on separate connections, racing with the same key, leave one row:
    the unique index decides, and the losers get no id."""
    conns: list[Any] = []
    try:
        for _ in range(20):
            conns.append(await connect(database_url))
        start = asyncio.Event()

        async def one(conn: Any) -> list[int]:
            await start.wait()
            async with conn.transaction():
                return await insert_jobs(conn, [JobSpec("w", {"x": 1}, uniq_key="same")])

        racers = [asyncio.create_task(one(c)) for c in conns]
        start.set()
        results = await asyncio.gather(*racers)
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    assert sorted(len(r) for r in results) == [0] * 19 + [1]
    assert await pool.fetchval("SELECT count(*) FROM jobd.jobs") == 1


async def test_insert_joins_the_callers_transaction(pool: Any) -> None:
    """Proves an insert inside a rolled-back transaction leaves nothing behind."""
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await insert_jobs(conn, [JobSpec("w")])
        await tx.rollback()
    assert await pool.fetchval("SELECT count(*) FROM jobd.jobs") == 0


async def test_one_notification_per_queue_per_batch(pool: Any, database_url: str) -> None:
    """Proves a batch notifies each queue that got available work once, with the queue
    name as payload, and that scheduled-only queues and notify=False stay silent."""
    listener = await asyncpg.connect(database_url)
    got: list[str] = []
    arrived = asyncio.Event()

    def on_note(_c: Any, _pid: int, _ch: str, payload: str) -> None:
        got.append(payload)
        arrived.set()

    await listener.add_listener(INSERT_CHANNEL, on_note)
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        async with pool.acquire() as conn:
            await insert_jobs(conn, [JobSpec("w", queue="a")] * 3 + [JobSpec("w", queue="b")])
            await insert_jobs(conn, [JobSpec("w", queue="c", scheduled_at=later)])
            await insert_jobs(conn, [JobSpec("w", queue="d")], notify=False)
            await insert_jobs(conn, [JobSpec("w", queue="z")])  # a marker: arrives last
        async with asyncio.timeout(5):
            while "z" not in got:
                arrived.clear()
                await arrived.wait()
    finally:
        await listener.close()
    assert sorted(got) == ["a", "b", "z"]
