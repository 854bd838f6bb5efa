"""The daemon: load the config, connect, migrate, start the engine, triggers and admin
listener, then supervise until a signal says stop.

SIGTERM / SIGINT stop gracefully (SPEC section 2). SIGHUP reloads: the new file is loaded
and validated first; an invalid one is logged with all its problems and the running
configuration stays. A valid one is applied by starting a new engine generation beside
the old one and then stopping the old one gracefully, so running jobs finish (or, past
`shutdown_grace`, go back to `available`) and none is dropped.
"""

from __future__ import annotations

import asyncio
import gc
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from jobd.actions.build import ActionServices
from jobd.actions.http import HttpClient
from jobd.admin.server import AdminDeps, AdminServer
from jobd.config import load_config
from jobd.console import install as install_console
from jobd.daemon import sdnotify
from jobd.engine import ops
from jobd.engine.config import POOL_RESERVE, CronEntry, EngineConfig, QueueConfig
from jobd.engine.engine import Engine
from jobd.engine.registry import WorkerRegistry
from jobd.errors import DatabaseError, JobdError
from jobd.model import Spec
from jobd.sql.db import create_pool, describe_url
from jobd.sql.driver import Pool
from jobd.sql.migrate import migrate
from jobd.triggers.jobs import cron_entries
from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.sql_api import sync_registry

log = structlog.get_logger("jobd.daemon")

POOL_HEADROOM = POOL_RESERVE  # connections beyond the queues' limits (see POOL_RESERVE)


def engine_config(spec: Spec, crons: tuple[CronEntry, ...] = ()) -> EngineConfig:
    """The engine's view of the configuration."""
    return EngineConfig(
        schema=spec.database.schema,
        node_name=spec.node or "",
        queues=tuple(QueueConfig(q.name, q.limit, q.global_limit) for q in spec.queues.values()),
        poll_interval_s=spec.engine.poll_interval_s,
        shutdown_grace_s=spec.engine.shutdown_grace_s,
        heartbeat_s=spec.engine.heartbeat_s,
        retention_s=dict(spec.engine.retention_s),
        max_rescues=spec.engine.max_rescues,
        crons=crons,
    )


def pool_size(spec: Spec) -> int:
    """At least `database.pool_size`; grown so every running job can hold a connection
    (a worker with `lock_for_update` keeps its row lock, and so its connection, while its
    action runs)."""
    return max(spec.database.pool_size, sum(q.limit for q in spec.queues.values()) + POOL_HEADROOM)


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (modules, config, compiled SQL, pools) out of
    the garbage collector's reach: they live as long as the process, and without this each
    full collection walks them all, stalling the event loop for 50-250 ms under load
    (measured by tests/faults/test_http_sink.py)."""
    gc.collect()
    gc.freeze()


@dataclass
class Generation:
    """One configuration, running: its engine and the trigger runtime feeding it."""

    spec: Spec
    engine: Engine
    runtime: TriggerRuntime


class Daemon:
    def __init__(self, config_path: Path, spec: Spec | None = None) -> None:
        self.config_path = config_path
        self.initial_spec = spec
        self.http = HttpClient()
        self.admin: AdminServer | None = None
        self.admin_deps: AdminDeps | None = None
        self.stop_requested = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self._pool: Pool | None = None
        self.current: Generation | None = None
        self._embedded: Any = None  # keeps the embedded server alive
        self.tracing: Any = None  # jobd.daemon.tracing.Tracing when otel is enabled

    async def database_url(self, spec: Spec) -> str:
        if spec.database.url:
            return spec.database.url
        from jobd.daemon.embedded import start_embedded

        url, self._embedded = await asyncio.to_thread(start_embedded)
        log.warning(
            "database.embedded",
            message="no database.url: using the embedded Postgres in ./.jobd (development only)",
        )
        return url

    @property
    def pool(self) -> Pool:
        if self._pool is None:
            raise JobdError("the daemon is not connected to its database yet")
        return self._pool

    @pool.setter
    def pool(self, pool: Pool) -> None:
        self._pool = pool

    async def start_generation(self, spec: Spec) -> Generation:
        registry = WorkerRegistry()
        services = ActionServices(http=self.http, schema=spec.database.schema)
        async with self.pool.acquire() as conn:
            runtime = await TriggerRuntime.create(
                spec, registry, self.pool, conn, services=services
            )
        engine = Engine(self.pool, engine_config(spec, cron_entries(spec)), registry)
        runtime.attach(engine)
        await engine.start()
        return Generation(spec, engine, runtime)

    async def stop_generation(self, generation: Generation) -> None:
        await generation.engine.stop()

    async def run(self) -> int:
        spec = self.initial_spec or load_config(self.config_path)
        if spec.otel.enabled:  # the otel extra is there: the configuration's check said so
            from jobd.daemon.tracing import Tracing

            self.tracing = Tracing.install(spec.otel)
        url = await self.database_url(spec)
        self.pool = await self.connect(url, spec)
        await self.http.start()
        try:
            async with self.pool.acquire() as conn:
                applied = await migrate(conn, spec.database.schema)
            if applied:
                log.info("database.migrated", versions=applied)
            await self.prepare()
            # Bind the admin listener before any job runs: a taken port fails the start
            # cleanly instead of leaving a started engine behind.
            await self.start_admin(spec)
            self.current = await self.start_generation(spec)
            self._serve(self.current)
            self._install_signals()
            freeze_startup_heap()
            log.info(
                "daemon.ready",
                node_id=self.current.engine.node_id,
                config=str(self.config_path),
                summary=spec.summary(),
            )
            sdnotify.ready(f"jobd ready: {spec.summary()}")
            try:
                await self.on_ready(self.current)
                await self._supervise()
            finally:
                await self._shutdown()
        finally:
            await self._close()
        log.info("daemon.stopped")
        return 0

    async def connect(self, url: str, spec: Spec) -> Pool:
        """The pool; a DatabaseError naming where (never the password) when it fails."""
        try:
            return await create_pool(url, min_size=2, max_size=pool_size(spec))
        except DatabaseError as exc:
            raise DatabaseError(
                f"{exc} (database.url: {describe_url(url)}); check that Postgres runs "
                "and accepts this user"
            ) from exc

    async def _shutdown(self) -> None:
        """Graceful stop: no new jobs, running ones finish within the grace (SPEC 2)."""
        sdnotify.stopping()
        log.info("daemon.stopping")
        await self.on_stop()
        if self.admin is not None:
            await self.admin.stop()
        if self.current is not None:
            await self.stop_generation(self.current)

    async def _close(self) -> None:
        if self.admin is not None:  # a start that failed after binding
            await self.admin.stop()
        await self.on_stop()  # again after a failed start: variants' hooks are idempotent
        await self.http.close()
        await self.pool.close()
        if self.tracing is not None:  # flushes the spans still buffered
            await asyncio.to_thread(self.tracing.shutdown)

    # Hooks for variants of the daemon (the demo seeds tables and starts a sink).
    async def prepare(self) -> None:
        """After migrating, before the triggers resolve their tables."""

    async def on_ready(self, generation: Generation) -> None:
        """After `daemon.ready`."""

    async def on_stop(self) -> None:
        """When a stop begins, before the engine stops; again (must be idempotent) when
        the daemon closes, also after a start that failed."""

    async def start_admin(self, spec: Spec) -> None:
        """The admin listener (health, metrics, API), unless `admin.listen` is off. It
        answers /readyz with 503 until `_serve` hands it the running generation."""
        if spec.admin.listen is None:
            return
        # The API refuses a scale this node's pool cannot hold (the engine caps it anyway).
        capacity = ops.PoolCapacity(self.pool.get_max_size(), POOL_HEADROOM)
        self.admin_deps = AdminDeps(self.pool, spec.database.schema, capacity=capacity)
        self.admin = AdminServer(spec.admin.listen, spec.admin.token, self.admin_deps)
        install_console(self.admin.app, self.admin.token)  # /console/ (docs/console.md)
        await self.admin.start()

    def _serve(self, generation: Generation) -> None:
        """Point the admin listener at `generation` (at start and on each reload)."""
        if self.admin_deps is not None:
            self.admin_deps.spec = generation.spec
            self.admin_deps.engine = generation.engine

    async def _supervise(self) -> None:
        watchdog = asyncio.create_task(self._watchdog(), name="jobd:watchdog")
        try:
            while not self.stop_requested.is_set():
                assert self.current is not None
                waits = {
                    asyncio.create_task(self.stop_requested.wait()),
                    asyncio.create_task(self.reload_requested.wait()),
                    asyncio.create_task(self.current.engine.wait()),
                }
                done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                for task in done:
                    task.result()  # an engine failure propagates and stops the daemon
                if self.reload_requested.is_set() and not self.stop_requested.is_set():
                    self.reload_requested.clear()
                    await self.reload()
        finally:
            watchdog.cancel()

    async def reload(self) -> None:
        sdnotify.reloading()
        assert self.current is not None
        old = self.current
        try:
            spec = load_config(self.config_path)
            self.current = await self.start_generation(spec)
        except Exception as exc:
            # Invalid, or valid but not fitting the database (a missing table, an entrypoint
            # that does not import), or the database failed meanwhile: the running
            # generation stays, untouched.
            problems = getattr(exc, "problems", None) or [_describe(exc)]
            log.error(
                "daemon.reload_rejected",
                problems=[str(p) for p in problems],
                message="invalid configuration; the running one stays",
            )
            await self._resync_registry(old.spec)
            sdnotify.ready()
            return
        self._serve(self.current)
        await self.stop_generation(old)
        log.info("daemon.reloaded", node_id=self.current.engine.node_id, summary=spec.summary())
        sdnotify.ready()

    async def _resync_registry(self, spec: Spec) -> None:
        """After a failed reload, the SQL functions' registry again describes `spec`."""
        try:
            async with self.pool.acquire() as conn:
                await sync_registry(conn, spec)
        except Exception as exc:  # the next start or reload rewrites it anyway
            log.warning("daemon.registry_sync_failed", error=repr(exc))

    async def _watchdog(self) -> None:
        interval = sdnotify.watchdog_interval_s()
        if interval is None:
            return
        while True:  # a blocked event loop stops these pings and systemd restarts us
            sdnotify.watchdog()
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, JobdError) else f"{type(exc).__name__}: {exc}"


def run_daemon(daemon: Daemon) -> int:
    """Run until stopped; uvloop where available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(daemon.run())
    return int(uvloop.run(daemon.run()))
