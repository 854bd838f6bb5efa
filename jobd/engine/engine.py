"""The Engine: one per process. Wires heartbeat, leader, leader services, notifier, acker
and one producer per queue, supervises them, and stops gracefully (SPEC section 2).

Graceful stop: producers stop fetching; running jobs get `shutdown_grace_s` to finish;
the rest are cancelled and their jobs returned to `available` at once (fenced, the
attempt not counted, since it did not fail). Oban leaves such jobs to the lifeline; we
return them immediately so another node runs them without waiting three heartbeats.
Then the acker writes every outcome, leadership is released and the node unregistered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any

import structlog

from jobd.engine import queues
from jobd.engine.acker import Acker
from jobd.engine.config import POOL_RESERVE, EngineConfig, new_node_id
from jobd.engine.insert import INSERT_CHANNEL, SIGNAL_CHANNEL, channel, insert_jobs
from jobd.engine.jobs import JobSpec, OutcomeKind
from jobd.engine.leader import Leader
from jobd.engine.nodes import Heartbeat
from jobd.engine.notifier import Notifier
from jobd.engine.producer import Producer
from jobd.engine.registry import WorkerRegistry
from jobd.engine.services import LeaderServices
from jobd.errors import JobdError
from jobd.sql.db import retrying
from jobd.sql.driver import Connection, Pool, Record

log = structlog.get_logger("jobd.engine")

ACKER_DRAIN_S = 10.0  # most a stop waits for outstanding acks
SERVICE_STOP_S = 10.0  # most a stop waits for leader parts to wind down


class EngineFailed(JobdError):
    """A background task of the engine died; the engine stopped."""


class Engine:
    """Runs jobs of the configured queues on this node. Use `async with Engine(...)`, or
    `await start()` ... `await stop()`."""

    def __init__(
        self,
        pool: Pool,
        config: EngineConfig,
        registry: WorkerRegistry,
        *,
        node_id: str | None = None,
    ) -> None:
        self.pool = pool
        self.config = config
        self.registry = registry
        self.node_id = node_id or new_node_id(config.node_name)
        self.producers: dict[str, Producer] = {}
        self.paused_workers: list[str] = []  # see set_paused_workers
        self.acker = Acker(pool, config.schema, self.node_id, on_flush=self._on_flush)
        self.notifier = Notifier(
            pool,
            {
                channel(config.schema, INSERT_CHANNEL): self._on_insert,
                channel(config.schema, SIGNAL_CHANNEL): self._on_signal,
            },
            on_connect=self._on_notifier_connect,
        )
        self.failure: BaseException | None = None
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._stop = asyncio.Event()  # tells heartbeat / leader / services to end
        self._stopped = asyncio.Event()
        self._started = False
        self._stopping = False
        self._refresh: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._heartbeat: Heartbeat | None = None
        self._leader: Leader | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Register the node, read queue settings, start every part."""
        if self._started:
            raise JobdError("engine already started")
        self._started = True
        cfg = self.config
        self._heartbeat = Heartbeat(self.pool, cfg, self.node_id, workers=self.registry.names())
        await retrying(self._heartbeat.register)
        rows = await retrying(self._read_rows)
        for qcfg in cfg.queues:
            state = queues.effective(qcfg, rows.get(qcfg.name), self._slack())
            self.producers[qcfg.name] = Producer(
                state,
                pool=self.pool,
                schema=cfg.schema,
                node_id=self.node_id,
                registry=self.registry,
                acker=self.acker,
                poll_interval_s=cfg.poll_interval_s,
                max_rescues=cfg.max_rescues,
            )
            self._apply_paused(self.producers[qcfg.name])
            self.producers[qcfg.name].notifications = self.notifier.connected
        self._leader = Leader(self.pool, cfg, self.node_id)
        lead_services = LeaderServices(self.pool, cfg, self._leader)
        self._spawn("acker", self.acker.run())
        self._spawn("notifier", self.notifier.run())
        self._spawn("heartbeat", self._heartbeat.run(self._stop))
        self._spawn("leader", self._leader.run(self._stop))
        self._spawn("leader-services", lead_services.run(self._stop))
        for name, producer in self.producers.items():
            self._spawn(f"producer:{name}", producer.run())
        log.info("engine.started", node_id=self.node_id, queues=sorted(self.producers))

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop; safe to call twice (the second waits for the first)."""
        if not self._started or self._stopping:
            if self._started:
                await self._stopped.wait()
            return
        self._stopping = True
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        log.info("engine.stopping", node_id=self.node_id, grace_s=grace)
        try:
            await self._stop_producers(grace)
            self.acker.close()
            await self._await_tasks(["acker"], ACKER_DRAIN_S)
            self._stop.set()
            self.notifier.stop()
            await self._await_tasks(list(self._tasks), SERVICE_STOP_S)
            if self._leader is not None:
                await _logged(self._leader.release(), "leader.release_failed")
            if self._heartbeat is not None:
                await _logged(self._heartbeat.unregister(), "node.unregister_failed")
        finally:
            self._stopped.set()
            log.info("engine.stopped", node_id=self.node_id)

    async def wait(self) -> None:
        """Until the engine stopped; raises EngineFailed when a background task died."""
        await self._stopped.wait()
        if self.failure is not None:
            raise EngineFailed(f"engine stopped: {self.failure}") from self.failure

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def is_running(self) -> bool:
        """Started and not stopped (readiness asks this)."""
        return self._started and not self._stopped.is_set()

    @property
    def is_leader(self) -> bool:
        return bool(self._leader is not None and self._leader.is_leader)

    @property
    def running(self) -> int:
        """Jobs executing on this node right now."""
        return sum(len(p.running) for p in self.producers.values())

    # -- API -------------------------------------------------------------------------------

    async def insert(self, specs: Sequence[JobSpec], conn: Connection | None = None) -> list[int]:
        """Insert jobs (on `conn`, in its transaction, when given)."""
        if conn is not None:
            return await insert_jobs(conn, specs, schema=self.config.schema)
        async with self.pool.acquire() as own:
            ids = await insert_jobs(own, specs, schema=self.config.schema)
        for name in {spec.queue for spec in specs}:
            if name in self.producers:  # committed: no need to wait for the notification
                self.producers[name].wake()
        return ids

    async def pause_queue(self, name: str) -> None:
        await queues.set_paused(self.pool, self.config.schema, name, True)
        await self.refresh_queues()

    async def resume_queue(self, name: str) -> None:
        await queues.set_paused(self.pool, self.config.schema, name, False)
        await self.refresh_queues()

    async def scale_queue(
        self, name: str, limit: int | None, *, global_limit: int | None = None
    ) -> None:
        """Set the per-node limit (None = configured); `global_limit` when given."""
        await queues.set_limits(
            self.pool,
            self.config.schema,
            name,
            limit,
            global_limit=global_limit,
            set_global=global_limit is not None,
        )
        await self.refresh_queues()

    def set_paused_workers(self, names: Sequence[str]) -> None:
        """Jobs of these workers are not fetched on this node (they wait as `available`);
        an empty list resumes them all. Used for triggers and schedules in state paused."""
        paused = sorted(set(names))
        self.paused_workers = paused
        for producer in self.producers.values():
            self._apply_paused(producer)
            producer.wake()
        if paused:
            log.info("worker.paused", node_id=self.node_id, workers=paused)

    async def refresh_queues(self) -> None:
        """Re-read the queues table and apply it to this node's producers."""
        rows = await retrying(self._read_rows)
        for qcfg in self.config.queues:
            producer = self.producers.get(qcfg.name)
            if producer is not None:
                producer.apply(queues.effective(qcfg, rows.get(qcfg.name), self._slack()))

    # -- internals -------------------------------------------------------------------------

    def _slack(self) -> int:
        """Pool connections that no configured queue limit claims."""
        configured = sum(q.limit for q in self.config.queues)
        return max(0, self.pool.get_max_size() - POOL_RESERVE - configured)

    def _apply_paused(self, producer: Producer) -> None:
        paused = set(self.paused_workers)
        producer.runnable_workers = [n for n in self.registry.names() if n not in paused]

    async def _read_rows(self) -> dict[str, Record]:
        async with self.pool.acquire() as conn:
            return await queues.read_rows(conn, self.config.schema)

    async def _stop_producers(self, grace_s: float) -> None:
        for producer in self.producers.values():
            producer.stop_fetching()
        names = [f"producer:{name}" for name in self.producers]
        await self._await_tasks(names, SERVICE_STOP_S)
        cut = await asyncio.gather(*(p.finish(grace_s) for p in self.producers.values()))
        if sum(cut):
            log.warning("engine.jobs_released", node_id=self.node_id, count=sum(cut))

    async def _await_tasks(self, names: list[str], timeout_s: float) -> None:
        tasks = [self._tasks[n] for n in names if n in self._tasks]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            log.warning("engine.task_stuck", task=task.get_name())
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"jobd:{name}")
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is None:
            return
        self.failure = exc
        log.error("engine.task_died", task=task.get_name(), error=repr(exc), exc_info=exc)
        asyncio.get_running_loop().create_task(self.stop(), name="jobd:stop-after-failure")

    def _on_insert(self, payload: str) -> None:
        producer = self.producers.get(payload)
        if producer is not None:
            producer.wake()

    def _on_signal(self, payload: str) -> None:
        message = json.loads(payload)
        log.debug("engine.signal", action=message.get("action"), queue=message.get("queue"))
        self._schedule_refresh()

    def _on_notifier_connect(self) -> None:
        # Signals and inserts sent while we were not listening are lost: catch up. Also on
        # the first connect: the queues table was read at start, before we listened, and a
        # scale or pause written in between would otherwise never reach this node.
        for producer in self.producers.values():
            producer.wake()
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        # One refresh task at a time; a signal during a refresh makes it read once more.
        self._refresh_again = True
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name="jobd:refresh"
            )

    async def _refresh_loop(self) -> None:
        while self._refresh_again and not self._stopping:
            self._refresh_again = False
            await _logged(self.refresh_queues(), "queue.refresh_failed")

    def _on_flush(self, counts: dict[OutcomeKind, int]) -> None:
        # Acks free cluster-wide capacity that global-limited producers count.
        for producer in self.producers.values():
            if producer.state.global_limit is not None:
                producer.wake()


async def _logged(coro: Coroutine[Any, Any, Any], event: str) -> None:
    try:
        await coro
    except Exception as exc:
        log.warning(event, error=repr(exc))
