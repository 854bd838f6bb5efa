"""The leader lease: at most one node at a time runs the leader-only services.

One row in `{schema}.leader` (name 'jobd') holds the lease. A node takes or renews it with
one upsert that succeeds only when it already holds the lease or the lease expired. The
holder renews every `lease_s / 2` (jittered, never later). Safety rules:

- `is_leader` is also bounded by a local deadline (start of the last successful renewal
  + `lease_s`, on the monotonic clock), so a node whose renewal hangs stops acting as
  leader by the time its lease can expire in the database, even before the query returns.
- The lease is held over a dedicated connection (not from the pool: busy job work never
  delays a renewal). Losing that connection counts as a failed renewal.
- A renewal that fails, raises or times out steps down at once (`is_leader` is False
  before anything else runs), tries to delete the lease row so another node can take
  over immediately, and sits out one lease before competing again.
- `release()` (graceful shutdown) steps down and deletes the row: immediate takeover.
- A follower retries right after the current lease expires (the upsert reports the time
  left), at the latest every `lease_s / 2`: takeover within one lease of the last renewal.

Tests and the services observe changes through `wait_until(leading)` and `on_change`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg
import structlog

from jobd.engine.config import EngineConfig
from jobd.engine.nodes import NodeService
from jobd.engine.timing import jittered, sleep_or_stop
from jobd.sql.db import DB_ERRORS
from jobd.sql.driver import Connection, Pool
from jobd.telemetry import EMPTY, emit

log = structlog.get_logger("jobd.engine")

# A follower retries this long after the lease it saw expires (absorbs clock rounding).
_EXPIRY_SLACK_S = 0.05
# Best-effort lease deletion after a failed renewal must not hold the loop up.
_RELINQUISH_TIMEOUT_S = 1.0


class Leader(NodeService):
    """Acquires, renews and releases the cluster's leader lease for one node."""

    def __init__(self, pool: Pool, config: EngineConfig, node_id: str) -> None:
        super().__init__(pool, config, node_id)
        self._leading = False
        self._deadline = 0.0  # monotonic time after which our lease may have expired
        self._changed = asyncio.Event()
        self.on_change: list[Callable[[bool], None]] = []

    @property
    def is_leader(self) -> bool:
        """True while we hold a lease that cannot have expired yet."""
        return self._leading and time.monotonic() < self._deadline

    async def wait_until(self, leading: bool) -> None:
        """Return once `is_leader == leading` (use with a timeout)."""
        while self.is_leader != leading:
            changed = self._changed
            if self._leading and not leading:
                # Our deadline may pass without an event: wake at the deadline at the latest.
                remaining_s = self._deadline - time.monotonic()
                try:
                    await asyncio.wait_for(changed.wait(), timeout=max(remaining_s, 0.001))
                except TimeoutError:
                    continue
            else:
                await changed.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for, and while held renew, the lease until `stop` is set."""
        while not stop.is_set():
            delay_s = await self.attempt()
            if await sleep_or_stop(stop, delay_s):
                return

    @property
    def backend_pid(self) -> int | None:
        """Server pid of the lease connection (tests terminate it to force a failover)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else int(conn.get_server_pid())

    async def attempt(self) -> float:
        """One acquire/renew round trip; returns the seconds to wait before the next."""
        lease_s = self.config.lease_s
        started = time.monotonic()
        if self._leading and started >= self._deadline:
            # Our lease lapsed without a renewal (the loop was late): say so before trying
            # again, so a successful acquire below is a new, announced term.
            self._set(False, reason="lease_lapsed")
        # A renewal must finish before our lease could expire; a follower's try is bounded too.
        timeout_s = self._deadline - started if self._leading else lease_s / 2
        try:
            async with asyncio.timeout(max(timeout_s, 0.001)):
                conn = await self._lease_conn()
                row = await conn.fetchrow(self._queries["leader_acquire"], self.node_id, lease_s)
                if row is None:  # the upsert always returns its row
                    raise asyncpg.InterfaceError("the lease query returned no row")
        except DB_ERRORS as exc:
            self._drop_dedicated()
            if self._leading:
                self._set(False, reason="renewal_failed", error=repr(exc))
                await self._relinquish()
            else:
                log.warning("leader.acquire_failed", node_id=self.node_id, error=repr(exc))
            return jittered(lease_s)  # sit out one lease so a healthy node wins
        if row["leading"]:
            self._deadline = started + lease_s
            if not self._leading:
                self._set(True)
            return jittered(lease_s / 2, spread=0.2)
        if self._leading:
            self._set(False, reason="lease_lost")
        remaining_s = row["remaining_s"]
        follow_s = lease_s / 2
        if remaining_s is not None:
            follow_s = min(follow_s, max(remaining_s, 0.0) + _EXPIRY_SLACK_S)
        return jittered(follow_s)

    async def _lease_conn(self) -> Connection:
        conn = self._conn
        if self._leading and (conn is None or conn.is_closed()):
            # The connection that renewed our lease is gone: do not trust the lease.
            self._conn = None
            raise asyncpg.InterfaceError("lease connection lost")
        return await self._dedicated()

    async def release(self) -> None:
        """Step down and delete the lease row so another node takes over at once."""
        if self._leading:
            self._set(False, reason="released")
        await self._relinquish()  # also when a renewal failed: the row may still be ours
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()

    def _set(self, leading: bool, *, reason: str = "", error: str | None = None) -> None:
        self._leading = leading
        if not leading:
            self._deadline = 0.0
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if leading:
            emit("leader.elected", EMPTY, {"node_id": self.node_id})
        else:
            extra = {} if error is None else {"error": error}
            emit("leader.resigned", EMPTY, {"node_id": self.node_id, "reason": reason, **extra})
        for callback in list(self.on_change):
            callback(leading)

    async def _relinquish(self) -> None:
        # Best effort: if the database is unreachable the lease simply expires.
        try:
            async with asyncio.timeout(_RELINQUISH_TIMEOUT_S):
                async with self.pool.acquire() as conn:
                    await conn.execute(self._queries["leader_release"], self.node_id)
        except DB_ERRORS as exc:
            log.debug("leader.release_failed", node_id=self.node_id, error=repr(exc))
