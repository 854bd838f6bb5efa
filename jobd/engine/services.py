"""Leader-only services, run while (and only while) this node holds the lease.

`LeaderServices.run(stop)` waits for leadership, then runs four loops side by side:

| service  | every                         | step                                   |
|----------|-------------------------------|----------------------------------------|
| stager   | `stage_interval_s`            | `stage_once` + `sweep_uniq_holds_once` |
| lifeline | `heartbeat_s`                 | `lifeline_once`                        |
| pruner   | `prune_interval_s`            | `prune_once`                           |
| cron     | at each entry's next tick     | `cron_once`                            |

Every step reads `now` from the database clock first and passes it in, so steps compare
database times only (and tests can pass any `now`). Intervals are jittered. When the
lease is lost the loops are cancelled at once (a step's transaction rolls back); a
database error in a step is logged and the step retried at its next interval; any other
error propagates and the owner (the Engine) stops loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog

from jobd.engine.config import EngineConfig
from jobd.engine.cron import cron_once, next_delay_s, validate_entry
from jobd.engine.leader import Leader
from jobd.engine.lifeline import lifeline_once
from jobd.engine.pruner import prune_once
from jobd.engine.stager import stage_once, sweep_uniq_holds_once
from jobd.engine.timing import jittered, sleep_or_stop
from jobd.sql import queries
from jobd.sql.db import DB_ERRORS
from jobd.sql.driver import Connection, Pool

log = structlog.get_logger("jobd.engine")

Step = Callable[[Connection, EngineConfig, datetime], Awaitable[int]]
_MIN_CRON_DELAY_S = 0.01  # never spin when the local clock runs ahead of the database's
_CRON_WAKE_LATE_S = 0.05  # wake just after a tick, never just before it


async def _stage_and_sweep(conn: Connection, config: EngineConfig, now: datetime) -> int:
    # The database's own now, not the loop's: the stager runs every second, and reading
    # the clock first would be one more round trip each time an idle cluster pays.
    staged = await stage_once(conn, config, None)
    await sweep_uniq_holds_once(conn, config, None)
    return staged


class LeaderServices:
    """Runs stager, lifeline, pruner and cron on the node that holds the lease."""

    def __init__(self, pool: Pool, config: EngineConfig, leader: Leader) -> None:
        for entry in config.crons:
            validate_entry(entry)
        self.pool = pool
        self.config = config
        self.leader = leader
        self._now_sql = queries(config.schema)["db_now"]
        self.runs: dict[str, int] = {}  # completed steps per service, for tests and status

    async def run(self, stop: asyncio.Event) -> None:
        """Serve each leadership term until `stop` is set."""
        while not stop.is_set():
            if not await self._wait_leading(stop):
                return
            await self._serve_term(stop)

    async def _wait_leading(self, stop: asyncio.Event) -> bool:
        leading = asyncio.ensure_future(self.leader.wait_until(True))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({leading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (leading, stopping):
                task.cancel()
        return not stop.is_set()

    async def _serve_term(self, stop: asyncio.Event) -> None:
        config = self.config
        loops = [
            self._loop(
                "stager", _stage_and_sweep, lambda _: config.stage_interval_s, stop, clock=False
            ),
            self._loop("lifeline", lifeline_once, lambda _: config.heartbeat_s, stop),
            self._loop("pruner", prune_once, lambda _: config.prune_interval_s, stop),
        ]
        if config.crons:
            loops.append(self._loop("cron", cron_once, self._cron_delay_s, stop))
        tasks = [asyncio.create_task(loop, name=f"jobd.leader.{i}") for i, loop in enumerate(loops)]
        ending = [
            asyncio.create_task(self.leader.wait_until(False), name="jobd.leader.lost"),
            asyncio.create_task(stop.wait(), name="jobd.leader.stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks + ending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks + ending:
                task.cancel()
            for task in tasks + ending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in done:  # a service that died of a non-database error: stop loudly
            if task in tasks and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    def _leading(self) -> bool:
        return self.leader.is_leader

    def _cron_delay_s(self, now: datetime) -> float:
        delay_s = next_delay_s(self.config.crons, now)
        late_s = random.uniform(0.0, _CRON_WAKE_LATE_S)  # noqa: S311 (jitter, not crypto)
        return max(delay_s + late_s, _MIN_CRON_DELAY_S)

    async def _loop(
        self,
        name: str,
        step: Step,
        delay_s: Callable[[datetime], float],
        stop: asyncio.Event,
        *,
        clock: bool = True,
    ) -> None:
        """Run `step` while leading. With `clock`, `now` is read from the database first
        (the step and `delay_s` get it); without, the step gets the local time and must
        use the database's own (the stager)."""
        while self.leader.is_leader and not stop.is_set():
            now: datetime | None = None
            try:
                async with self.pool.acquire() as conn:
                    now = await conn.fetchval(self._now_sql) if clock else datetime.now(UTC)
                    if not self._leading():  # lost while we waited for a connection
                        return
                    await step(conn, self.config, now)
                self.runs[name] = self.runs.get(name, 0) + 1
            except DB_ERRORS as exc:
                log.warning("leader.service_failed", service=name, error=repr(exc))
            wait_s = delay_s(now) if now is not None else self.config.stage_interval_s
            if name != "cron":
                wait_s = jittered(wait_s)
            await sleep_or_stop(stop, wait_s)
