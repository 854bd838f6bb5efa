"""The leader lease: one leader among many, failover, release, immediate step-down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg

from jobd.engine.config import EngineConfig, new_node_id
from jobd.engine.leader import Leader

LEASE_S = 1.0
CONFIG = EngineConfig(lease_s=LEASE_S)


class Node:
    """One Leader with its own pool and its own run task."""

    def __init__(self, pool: Any, name: str) -> None:
        self.pool = pool
        self.leader = Leader(pool, CONFIG, new_node_id(name))
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.leader.run(self.stop))

    async def halt(self, *, release: bool = True) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task
        if release:
            await self.leader.release()


@asynccontextmanager
async def cluster(url: str, count: int) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(count):
            pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
            stack.push_async_callback(pool.close)
            nodes.append(Node(pool, f"n{i}"))
        for node in nodes:
            node.start()
        try:
            yield nodes
        finally:
            for node in nodes:
                await node.halt()


async def the_leader(nodes: list[Node], timeout_s: float = 3 * LEASE_S) -> Node:
    """Wait until some node leads; return it."""
    waits = {asyncio.ensure_future(n.leader.wait_until(True)): n for n in nodes}
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when="FIRST_COMPLETED")
    finally:
        for w in waits:
            w.cancel()
    assert done, "no leader was elected"
    return waits[next(iter(done))]


async def holder(url: str) -> str | None:
    conn = await asyncpg.connect(url)
    try:
        value: str | None = await conn.fetchval(
            "SELECT node_id FROM jobd.leader WHERE expires_at > now()"
        )
        return value
    finally:
        await conn.close()


async def test_exactly_one_leader_among_three(database_url: str) -> None:
    """Three Leaders on one database: one leads, the others never do while it renews."""
    async with cluster(database_url, 3) as nodes:
        first = await the_leader(nodes)
        deadline = time.monotonic() + 2 * LEASE_S
        while time.monotonic() < deadline:
            leading = [n for n in nodes if n.leader.is_leader]
            assert leading == [first]
            await asyncio.sleep(0.02)
        assert await holder(database_url) == first.leader.node_id


async def test_failover_when_leader_connection_is_killed(database_url: str) -> None:
    """Terminating the leader's lease connection makes it step down, and another node takes
    over within one lease."""
    async with cluster(database_url, 2) as nodes:
        first = await the_leader(nodes)
        other = next(n for n in nodes if n is not first)
        pid = first.leader.backend_pid
        assert pid is not None
        stepped_down = asyncio.ensure_future(first.leader.wait_until(False))
        admin = await asyncpg.connect(database_url)
        try:
            killed_at = time.monotonic()
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.wait_for(other.leader.wait_until(True), timeout=LEASE_S + 0.3)
        assert time.monotonic() - killed_at <= LEASE_S + 0.3
        await asyncio.wait_for(stepped_down, timeout=0.1)
        assert not first.leader.is_leader
        assert await holder(database_url) == other.leader.node_id


async def test_takeover_when_renewals_stop(database_url: str) -> None:
    """A leader that stops renewing (hung, not released) loses leadership by its own
    deadline and another node takes over within one lease."""
    async with cluster(database_url, 2) as nodes:
        first = await the_leader(nodes)
        other = next(n for n in nodes if n is not first)
        stopped_at = time.monotonic()
        await first.halt(release=False)  # renewals stop; the row stays until it expires
        await asyncio.wait_for(other.leader.wait_until(True), timeout=LEASE_S + 0.3)
        assert time.monotonic() - stopped_at <= LEASE_S + 0.3
        assert not first.leader.is_leader


async def test_release_hands_over_at_once(database_url: str) -> None:
    """Releasing on shutdown deletes the lease: a follower takes over at its next try
    (well before the lease would have expired)."""
    config = EngineConfig(lease_s=4.0)
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(2)]
    a = Leader(pools[0], config, new_node_id("a"))
    b = Leader(pools[1], config, new_node_id("b"))
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    try:
        assert await a.attempt() > 0 and a.is_leader  # a leads first
        task_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(0.1)  # b is now waiting for its next try
        assert not b.is_leader
        released_at = time.monotonic()
        await a.release()
        assert not a.is_leader
        await asyncio.wait_for(b.wait_until(True), timeout=config.lease_s / 2 + 0.3)
        assert time.monotonic() - released_at < config.lease_s
        stop_b.set()
        await task_b
        await b.release()
        assert await holder(database_url) is None
    finally:
        stop_a.set()
        for pool in pools:
            await pool.close()


async def test_failed_renewal_steps_down_before_anything_else(database_url: str) -> None:
    """When a renewal fails, is_leader is already False when the change callback runs and
    when attempt() returns; the lease row is deleted so others can take over at once."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    leader = Leader(pool, CONFIG, new_node_id("x"))
    seen: list[tuple[bool, bool]] = []
    leader.on_change.append(lambda leading: seen.append((leading, leader.is_leader)))
    try:
        await leader.attempt()
        assert leader.is_leader
        admin = await asyncpg.connect(database_url)
        try:
            await admin.fetchval("SELECT pg_terminate_backend($1)", leader.backend_pid)
            await asyncio.sleep(0.05)  # let the client see the connection close
            await leader.attempt()
            assert not leader.is_leader
            assert seen == [(True, True), (False, False)]
            assert await admin.fetchval("SELECT count(*) FROM jobd.leader") == 0
        finally:
            await admin.close()
        await leader.release()
    finally:
        await pool.close()


async def test_hanging_renewal_steps_down_by_the_deadline(database_url: str) -> None:
    """A renewal blocked in the database (the lease row locked elsewhere) does not keep the
    node leading past its lease: it steps down by its local deadline."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    leader = Leader(pool, CONFIG, new_node_id("y"))
    blocker = await asyncpg.connect(database_url)
    try:
        await leader.attempt()
        assert leader.is_leader
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT * FROM jobd.leader FOR UPDATE")
        stepped_down: list[float] = []
        leader.on_change.append(lambda _: stepped_down.append(time.monotonic()))
        started = time.monotonic()
        await leader.attempt()  # blocks on the row lock until the deadline
        assert not leader.is_leader
        assert stepped_down and stepped_down[0] - started <= LEASE_S + 0.1
        await tx.rollback()
        await leader.release()
    finally:
        await blocker.close()
        await pool.close()


async def test_lapsed_lease_is_announced_before_a_new_term(database_url: str) -> None:
    """A leader whose renewal comes after its deadline is not leading in between, and the
    next successful acquire starts a new, announced term (False then True on on_change),
    so services waiting for leadership resume."""
    config = EngineConfig(lease_s=0.3)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    leader = Leader(pool, config, new_node_id("z"))
    seen: list[bool] = []
    leader.on_change.append(seen.append)
    try:
        await leader.attempt()
        await asyncio.wait_for(leader.wait_until(False), timeout=1.0)  # deadline passes
        await leader.attempt()
        assert leader.is_leader
        assert seen == [True, False, True]
        await leader.release()
    finally:
        await pool.close()
