"""Liveness is never starved by work, and shortages wait (issue 11, cases 4 and 5; SPEC 2
and 5): the heartbeat and the leader lease use connections of their own, a runtime scale
beyond the pool is capped, and a connection shortage (SQLSTATE 53300) pauses work without
using up any job's attempt or declaring a live node dead."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from jobd.engine import queues
from jobd.sql.db import create_pool
from tests.faults.cluster import Cluster, config
from tests.faults.daemon import poll

pytestmark = pytest.mark.faults


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(database_url, tmp_path)
    await c.setup()
    try:
        yield c
    finally:
        await c.close()


async def all_done(cluster: Cluster, items: int) -> bool:
    return bool(
        await cluster.conn.fetchval("SELECT count(*) = $1 FROM public.items WHERE done", items)
    )


async def test_a_scale_beyond_the_pool_is_capped_and_starves_nothing(cluster: Cluster) -> None:
    """A daemon (queue limit 5, so a pool of 10) runs 60 jobs that each hold their row lock,
    and so a pool connection, for 1.5 s; the queue is scaled to 60 at runtime (as another
    node's `jobd queues scale` would write it). The daemon caps the limit at what its pool
    can hold (`queue.scale_capped`), its heartbeat never waits for the pool (own
    connection), so it is never declared dead: no job is rescued, every row runs exactly
    once (before: the heartbeat starved behind 60 jobs, the leader declared the live node
    dead and rescued its jobs; 50 of 60 rows ran twice)."""
    items = 60
    daemon = await cluster.start(
        config(cluster.url, {"process": {"sleep_s": 1.5}}, queues="{work: 5}")
    )
    pool = await create_pool(cluster.url, min_size=1, max_size=2)
    try:
        await queues.set_limits(pool, "jobd", "work", 60)
    finally:
        await pool.close()
    capped = await daemon.wait_event("queue.scale_capped")
    assert capped["requested"] == 60 and capped["limit"] == 5
    started = time.monotonic()
    assert await cluster.enqueue("process", 1, items) == items
    await poll(lambda: all_done(cluster, items), 60, "every item done")
    await cluster.check_each_item_once(items)
    rescued = await cluster.conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE meta ? 'rescued'")
    assert rescued == 0 and not daemon.find("node.dead")
    print(f"\n{items} rows in {time.monotonic() - started:.1f} s at the capped limit, none rescued")
    assert await daemon.stop() == 0


async def test_a_connection_shortage_waits_and_loses_nothing(
    cluster: Cluster, database_url: str
) -> None:
    """A daemon connects as its own role; once it runs, the role may open no new
    connection (CONNECTION LIMIT 1), so its pool keeps the 2 connections it has while the
    batches of sixteen triggers (one job each, 10 at once) want one each: those that cannot
    get a connection fail with SQLSTATE 53300 (too many connections). A second daemon (the
    leader, not short of anything, running none of these jobs) watches the first one's
    heartbeats. For 15 s of shortage, no job is discarded, no attempt is used up by it
    (each job's attempts minus its snoozes is 1), the node is never declared
    dead; once the limit is lifted every row completes exactly once (before: the
    transient-error budget ran out after 5 snoozes and jobs were discarded)."""
    role = f"jobd_short_{uuid.uuid4().hex[:8]}"
    admin = cluster.conn
    await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 7")
    # A member of the role that owns jobd's schema and tables may migrate them too (and
    # the connection limit is the role's own, whatever it is a member of).
    owner = await admin.fetchval("SELECT current_user")
    await admin.execute(f'GRANT "{owner}" TO {role}')
    url = _as_role(database_url, role)
    try:
        # 4 s each, longer than three heartbeats: the pool's 2 connections stay busy with
        # jobs, the other jobs keep failing, and a heartbeat taken from the pool would wait.
        # Sixteen triggers of one row each, enqueued in one transaction: the first fetch
        # claims 10 jobs of 10 triggers, 10 batches that want a connection each.
        triggers, per_trigger = 16, 1
        items = triggers * per_trigger
        bystander = {"bystander": {"kind": "z", "queue": "other"}}  # the leader, not on `work`
        await cluster.start(config(cluster.url, bystander, queues="{other: 1}"))
        names = [f"p{i}" for i in range(triggers)]
        workers = {name: {"sleep_s": 4} for name in names}
        daemon = await cluster.start(config(url, workers, queues="{work: 10}"))
        await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT 1")
        async with admin.transaction():
            for i, name in enumerate(names):
                first = i * per_trigger + 1
                assert await cluster.enqueue(name, first, first + per_trigger - 1) == per_trigger
        await daemon.wait_event("job.database_error", timeout_s=20)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # deliberately: the shortage lasts 15 s
            states = await cluster.states()
            assert "discarded" not in states, states
            await asyncio.sleep(0.5)
        shortage_errors = len(daemon.find("job.database_error"))
        await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT -1")
        await poll(lambda: all_done(cluster, items), 120, "every item done")
        await cluster.check_each_item_once(items)
        spent = await admin.fetch(
            "SELECT attempt - coalesce((meta ->> 'snoozed')::int, 0) AS spent FROM jobd.jobs"
        )
        assert {row["spent"] for row in spent} == {1}
        leader = cluster.daemons[0]
        assert not leader.find("node.dead") and not leader.find("job.rescue")
        print(
            f"\n{items} rows through a connection shortage: {shortage_errors} attempts met "
            "53300 and were snoozed, none discarded, no attempt used up"
        )
        assert await daemon.stop() == 0
    finally:
        for daemon in cluster.daemons:
            await daemon.kill()
        await admin.execute(f"ALTER ROLE {role} CONNECTION LIMIT -1")


def _as_role(url: str, role: str) -> str:
    """`url` with the user replaced by `role` (trust authentication on the test server)."""
    rest = url.split("://", 1)[1]
    host = rest.split("@", 1)[1] if "@" in rest else rest
    return f"postgresql://{role}@{host}"


@pytest.fixture(autouse=True)
async def _drop_roles(database_url: str) -> AsyncIterator[None]:
    """The test's role goes with the test (roles are the whole server's, not the
    database's)."""
    yield
    conn = await asyncpg.connect(database_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        for (role,) in await conn.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'jobd_short_%'"
        ):
            await conn.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}')
            await conn.execute(f"DROP OWNED BY {role}")
            await conn.execute(f"DROP ROLE {role}")  # its memberships go with it
    finally:
        await conn.close()
