"""The daemon's generation (engine + trigger runtime + shared HTTP client) run inside the
test's event loop, through `jobd.daemon.Daemon`'s own wiring, plus a loopback HTTP sink.

    async with running(yaml_text, database_url) as gen:   # gen: jobd.daemon.Generation
        ...

Used where a test must watch the event loop itself (loop lag) or serve the HTTP sink
from the same process.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from jobd.config import load_config_text
from jobd.daemon.supervisor import Daemon, Generation, freeze_startup_heap, pool_size
from jobd.logging import configure as configure_logging
from jobd.model import Spec
from jobd.sql.db import create_pool

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def running(config_yaml: str, database_url: str, log_path: Path) -> AsyncIterator[Generation]:
    """The generation of `config_yaml` on `database_url`, logging JSON lines to `log_path`
    as `jobd run` does (the test's console renderer would cost the loop more than the
    daemon's renderer does); structlog's previous configuration comes back afterwards."""
    spec = load_config_text(config_yaml, "faults.yaml", env={})
    saved = structlog.get_config()
    with log_path.open("a") as log_stream:
        configure_logging(level="info", fmt="json", stream=log_stream)
        try:
            async with _generation(spec, database_url) as generation:
                yield generation
        finally:
            structlog.configure(**saved)


@asynccontextmanager
async def _generation(spec: Spec, database_url: str) -> AsyncIterator[Generation]:
    daemon = Daemon(Path("faults.yaml"), spec)
    daemon.pool = await create_pool(database_url, min_size=2, max_size=pool_size(spec))
    await daemon.http.start()
    try:
        generation = await daemon.start_generation(spec)
        freeze_startup_heap()  # as `jobd run` does once ready
        try:
            yield generation
        finally:
            gc.unfreeze()
            await daemon.stop_generation(generation)
    finally:
        await daemon.http.close()
        await daemon.pool.close()


@asynccontextmanager
async def http_sink(handler: Handler) -> AsyncIterator[str]:
    """A loopback aiohttp server answering every path with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class LagProbe:
    """Measures event-loop lag: how late a 10 ms sleep wakes up, at most, while running."""

    INTERVAL_S = 0.01

    def __init__(self) -> None:
        self.max_lag_s = 0.0
        self.samples = 0
        self.spikes: list[tuple[float, float]] = []  # (seconds since start, lag) over 50 ms
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        begin = loop.time()
        while True:
            started = loop.time()
            await asyncio.sleep(self.INTERVAL_S)
            lag_s = loop.time() - started - self.INTERVAL_S
            if lag_s > 0.05:
                self.spikes.append((round(started - begin, 3), round(lag_s, 3)))
            self.max_lag_s = max(self.max_lag_s, lag_s)
            self.samples += 1

    def __enter__(self) -> LagProbe:
        self._task = asyncio.create_task(self._run(), name="fault-test:lag-probe")
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
