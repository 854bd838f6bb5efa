"""Node heartbeats: each engine process keeps one row in `nodes` fresh.

The lifeline (a leader service) treats a node whose heartbeat is older than three
intervals as dead and rescues its executing jobs, so a beat that fails is only logged and
retried: the row ages, it is not deleted. A node whose row vanished (declared dead while it
was merely slow) puts it back on the next beat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import structlog

from jobd.common.jsontext import json_text
from jobd.engine.config import EngineConfig
from jobd.engine.timing import jittered, sleep_or_stop
from jobd.sql import queries
from jobd.sql.db import DB_ERRORS, connect_like
from jobd.sql.driver import Connection, Pool, Record

log = structlog.get_logger("jobd.engine")


class NodeService:
    """A part of the engine that acts for this node: its heartbeat, its leader lease.

    Each keeps a connection of its own, outside the pool: work that fills the pool (jobs
    holding row locks, a queue scaled up) must never delay the node's liveness, or the
    cluster would declare a busy node dead."""

    def __init__(self, pool: Pool, config: EngineConfig, node_id: str) -> None:
        self.pool = pool
        self.config = config
        self.node_id = node_id
        self._queries = queries(config.schema)
        self._conn: Connection | None = None

    async def _dedicated(self) -> Connection:
        """The service's own connection, opened (like the pool's) when there is none."""
        conn = self._conn
        if conn is None or conn.is_closed():
            conn = self._conn = await connect_like(self.pool)
        return conn

    def _drop_dedicated(self) -> None:
        """Forget the connection (it may be mid-query after a timeout: no graceful close)."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()


class Heartbeat(NodeService):
    """Registers this process as a node and beats every `heartbeat_s` (jittered). The node
    row names the workers and queues it serves, so `jobd status` can tell which waiting
    jobs no live node will claim."""

    beats = 0  # successful beats, for tests and status

    def __init__(
        self,
        pool: Pool,
        config: EngineConfig,
        node_id: str,
        *,
        workers: Collection[str] = (),
    ) -> None:
        super().__init__(pool, config, node_id)
        queues = sorted(q.name for q in config.queues)
        self._serves = json_text({"workers": sorted(workers), "queues": queues})

    async def register(self) -> None:
        """Insert (or refresh) our node row; raises when the database refuses."""
        await self._beat()
        log.info("node.registered", node_id=self.node_id)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until `stop` is set. A failed beat is logged; the next one retries."""
        while not await sleep_or_stop(stop, jittered(self.config.heartbeat_s)):
            try:
                await self._beat()
            except DB_ERRORS as exc:
                log.warning("node.heartbeat_failed", node_id=self.node_id, error=repr(exc))

    async def unregister(self) -> None:
        """Delete our node row (graceful shutdown); errors are logged, not raised."""
        try:
            async with self.pool.acquire() as conn:
                await conn.execute(self._queries["node_unregister"], self.node_id)
        except DB_ERRORS as exc:
            log.warning("node.unregister_failed", node_id=self.node_id, error=repr(exc))
        finally:
            self._drop_dedicated()

    async def _beat(self) -> None:
        # One upsert: refreshes our row, or re-creates it when the lifeline deleted it. On
        # the node's own connection, bounded by one interval: a beat never waits for the
        # pool, and a hung one is abandoned for a fresh connection at the next.
        try:
            async with asyncio.timeout(self.config.heartbeat_s):
                conn = await self._dedicated()
                row: Record | None = await conn.fetchrow(
                    self._queries["node_beat"],
                    self.node_id,
                    self.config.node_name or self.node_id,
                    self._serves,
                )
        except BaseException:
            self._drop_dedicated()
            raise
        self.beats += 1
        if row is not None and row["inserted"] and self.beats > 1:
            log.warning("node.reregistered", node_id=self.node_id)
