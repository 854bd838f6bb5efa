"""Queue control's guard rails against a real database (jobd.engine.ops): only known
queues change unless a new one is asked for, a limit must fit the daemons' pool, and a
queue no configuration names can be removed once no unfinished job uses it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobd.engine import ops
from jobd.errors import UsageError
from jobd.sql.db import create_pool

CONFIGURED = {"default": 5, "mail": 2}


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    """A pool on a fresh database with one finished job in queue `old` and one waiting
    job in queue `busy`."""
    p = await create_pool(database_url, min_size=1, max_size=3)
    await p.execute(
        "INSERT INTO jobd.jobs (worker, queue, state) VALUES ('w', 'old', 'completed'),"
        " ('w', 'busy', 'available')"
    )
    try:
        yield p
    finally:
        await p.close()


async def names(pool: Any) -> set[str]:
    async with pool.acquire() as conn:
        return {q["name"] for q in await ops.list_queues(conn, "jobd", CONFIGURED)}


async def test_unknown_queues_are_refused_with_the_closest_name(pool: Any) -> None:
    """pause/resume/scale of a name nobody knows raise UnknownQueue naming the closest
    known queue, and leave no row behind; configured names and names with jobs work."""
    attempts = [
        (ops.pause_queue, ("defualt",), "did you mean 'default'"),
        (ops.resume_queue, ("nosuchqueue",), "known: busy, default, mail, old"),
        (ops.scale_queue, ("mial", 2), "did you mean 'mail'"),
    ]
    for change, args, words in attempts:
        with pytest.raises(ops.UnknownQueue) as caught:
            await change(pool, "jobd", *args, configured=CONFIGURED)
        assert words in str(caught.value)
    assert await names(pool) == {"default", "mail", "old", "busy"}
    await ops.pause_queue(pool, "jobd", "mail", configured=CONFIGURED)  # configured only
    await ops.pause_queue(pool, "jobd", "old", configured=CONFIGURED)  # known by its jobs
    assert await names(pool) == {"default", "mail", "old", "busy"}


async def test_create_makes_a_new_queue_with_a_valid_name(pool: Any) -> None:
    """With create=True a new name is accepted (and then known); a name the configuration
    could not use, or text Postgres cannot store, is refused."""
    await ops.pause_queue(pool, "jobd", "webhooks", configured=CONFIGURED, create=True)
    assert "webhooks" in await names(pool)
    await ops.resume_queue(pool, "jobd", "webhooks", configured=CONFIGURED)  # known now
    for bad in ("a b", "x" * 129, "9lives", "a\x00b", "\udcff"):
        with pytest.raises(UsageError):
            await ops.pause_queue(pool, "jobd", bad, configured=CONFIGURED, create=True)


async def test_a_limit_must_fit_the_pool(pool: Any) -> None:
    """Room for a queue: the pool less its headroom and the other queues' configured
    limits; beyond it the message says how to get more."""
    capacity = ops.PoolCapacity(size=20, headroom=5)
    assert capacity.room(CONFIGURED, "default") == 13
    await ops.scale_queue(pool, "jobd", "default", 13, configured=CONFIGURED, capacity=capacity)
    with pytest.raises(UsageError) as caught:
        await ops.scale_queue(pool, "jobd", "default", 14, configured=CONFIGURED, capacity=capacity)
    assert "at most 13" in str(caught.value) and "raise database.pool_size" in str(caught.value)
    await ops.scale_queue(pool, "jobd", "default", None, configured=CONFIGURED, capacity=capacity)


async def test_remove_forgets_only_unconfigured_idle_queues(pool: Any) -> None:
    """remove_queue refuses a configured queue and one with unfinished jobs (QueueInUse),
    an unknown one (UnknownQueue); it removes a created queue's settings for good."""
    with pytest.raises(ops.QueueInUse, match="in the configuration"):
        await ops.remove_queue(pool, "jobd", "default", configured=CONFIGURED)
    with pytest.raises(ops.QueueInUse, match="1 job"):
        await ops.remove_queue(pool, "jobd", "busy", configured=CONFIGURED)
    with pytest.raises(ops.UnknownQueue):
        await ops.remove_queue(pool, "jobd", "nosuchqueue", configured=CONFIGURED)
    await ops.scale_queue(pool, "jobd", "phantom", 3, configured=CONFIGURED, create=True)
    assert "phantom" in await names(pool)
    await ops.remove_queue(pool, "jobd", "phantom", configured=CONFIGURED)
    assert "phantom" not in await names(pool)
    async with pool.acquire() as conn:
        assert "phantom" not in await ops.queue_settings(conn, "jobd")
