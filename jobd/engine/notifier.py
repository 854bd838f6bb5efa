"""LISTEN/NOTIFY on one dedicated connection, with reconnect and re-LISTEN.

Notifications are only a hint that wakes producers early; polling stays the truth, so a
notification lost while the connection was down costs at most one poll interval. The
connection is not taken from the pool (a pooled connection would be reset and its LISTENs
dropped when released). On loss it is reopened with jittered backoff; `on_connect` runs
after every (re)connect so the engine can re-read what it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from jobd.sql.db import backoff_s, connect_like
from jobd.sql.driver import Connection, Pool

log = structlog.get_logger("jobd.engine")

Handler = Callable[[str], None]
HEALTH_CHECK_S = 15.0  # a silent connection is probed this often (half-open TCP)


class Notifier:
    """Listens on `handlers`' channels; each payload goes to its channel's handler."""

    def __init__(
        self,
        pool: Pool,
        handlers: Mapping[str, Handler],
        *,
        on_connect: Callable[[], None] | None = None,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.handlers = dict(handlers)
        self.on_connect = on_connect
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        self.connects = 0  # successful (re)connects, for tests and status
        self.server_pid: int | None = None
        self._conn: Connection | None = None
        self._lost = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Keep a listening connection until `stop()`."""
        failures = 0
        while not self._stop.is_set():
            try:
                await self._listen()
                failures = 0
                await self._hold()
            except Exception as exc:  # any failure here only means: reconnect
                failures += 1
                log.warning("notifier.disconnected", error=str(exc) or type(exc).__name__)
            finally:
                await self._close()
            if self._stop.is_set():
                break
            delay_s = backoff_s(max(failures, 1), base_s=0.05, max_s=self.max_backoff_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._stop.wait()

    async def _listen(self) -> None:
        self._lost.clear()
        conn = await connect_like(self.pool)
        self._conn = conn
        conn.add_termination_listener(lambda _conn: self._lost.set())
        for name, handler in self.handlers.items():
            await conn.add_listener(name, _callback(handler))
        self.server_pid = conn.get_server_pid()
        self.connects += 1
        self.connected.set()
        log.info("notifier.listening", channels=sorted(self.handlers), connects=self.connects)
        if self.on_connect is not None:
            self.on_connect()

    async def _hold(self) -> None:
        """Return when the connection is lost (or stop); probe it when quiet."""
        conn = self._conn
        assert conn is not None  # _listen opened it
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            while not self._stop.is_set() and not self._lost.is_set():
                await asyncio.wait(
                    {stop, lost}, timeout=HEALTH_CHECK_S, return_when=asyncio.FIRST_COMPLETED
                )
                if not self._stop.is_set() and not self._lost.is_set():
                    async with asyncio.timeout(HEALTH_CHECK_S):
                        await conn.execute("SELECT 1")
            if self._lost.is_set() and not self._stop.is_set():
                raise ConnectionError("notification connection lost")
        finally:
            stop.cancel()
            lost.cancel()

    async def _close(self) -> None:
        self.connected.clear()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2.0)
        elif conn is not None:
            conn.terminate()


def _callback(handler: Handler) -> Callable[[Any, int, str, str], None]:
    def on_notification(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            handler(payload)
        except Exception as exc:  # a bad payload must not kill the listener
            log.warning("notifier.handler_failed", error=str(exc), payload=payload[:200])

    return on_notification
