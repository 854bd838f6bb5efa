"""Bounds of the admin listener: no client may take the daemon's sockets or tasks.

The admin listener shares the process (and its file descriptors) with the engine. Without
bounds, clients that open connections and never finish a request (half-sent headers, a
body trickled byte by byte, idle keep-alives) pile up until the process cannot open a
socket, and the engine's database connections fail. So:

- at most `MAX_CONNECTIONS` connections at once: one more takes the place of the oldest
  connection that has not sent a request head yet (so half-open connections cannot keep
  `/healthz` out), or is closed at once when every held one is serving a request;
- a connection must send a whole request head within `HEAD_TIMEOUT_S` of opening;
- a request (body included) must be answered within `REQUEST_TIMEOUT_S` (408 after that);
- an idle keep-alive connection is closed after `KEEPALIVE_S`.

aiohttp has settings for keep-alive only; the first two bounds hook its low-level server
(`aiohttp.web.Server`), the third is a middleware. tests/faults/ proves them with real
sockets (so a change in aiohttp that breaks the hook fails a test, not a production box).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger("jobd.admin")

MAX_CONNECTIONS = 256
HEAD_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0
KEEPALIVE_S = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BoundedServer(web.Server):
    """aiohttp's server with a cap on connections and a deadline for the request head."""

    max_connections = MAX_CONNECTIONS
    head_timeout_s = HEAD_TIMEOUT_S
    refused = 0  # connections closed at once for being over the cap
    evicted = 0  # silent connections closed to make room for a new one

    def __call__(self) -> Any:  # the protocol factory, one call per new connection
        if len(self.connections) < self.max_connections or self._evict_silent():
            return super().__call__()
        self.refused += 1
        if self.refused == 1 or self.refused % 100 == 0:
            log.warning(
                "admin.connection_refused",
                refused=self.refused,
                limit=self.max_connections,
                reason="too many open connections to the admin listener",
            )
        return _Refuse()

    def _evict_silent(self) -> bool:
        """Close the oldest connection that has not sent a request head yet, so a flood
        of half-open connections cannot keep a health check out; False when every held
        connection is serving (then the new one is refused)."""
        for handler in self.connections:  # oldest first
            transport = handler.transport
            silent = getattr(handler, "_request_count", 1) == 0
            if silent and transport is not None and not transport.is_closing():
                transport.abort()
                self.evicted += 1
                if self.evicted == 1 or self.evicted % 100 == 0:
                    log.warning(
                        "admin.connection_evicted",
                        evicted=self.evicted,
                        limit=self.max_connections,
                        reason="the oldest connection without a request head made room",
                    )
                return True
        return False

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        asyncio.get_running_loop().call_later(self.head_timeout_s, _head_deadline, handler)


class _Refuse(asyncio.Protocol):
    """The protocol of a connection over the cap: closed as soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _head_deadline(handler: RequestHandler) -> None:
    # `_request_count` counts the request heads the connection has sent (aiohttp's own
    # counter); a connection that has sent none by now is closed.
    transport = handler.transport
    idle = getattr(handler, "_request_count", 1) == 0
    if idle and transport is not None and not transport.is_closing():
        transport.abort()


def bound(server: web.Server) -> web.Server:
    """`server` (made by aiohttp's AppRunner) as a BoundedServer: the same object, the
    hooks of the subclass. The class is swapped because the runner builds the server."""
    server.__class__ = BoundedServer
    return server


class BoundedRunner(web.AppRunner):
    """An AppRunner whose server is bounded and whose keep-alives end after KEEPALIVE_S."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=KEEPALIVE_S, **kwargs)

    async def _make_server(self) -> web.Server:
        return bound(await super()._make_server())


@web.middleware
async def request_timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request (its body read included) answered within REQUEST_TIMEOUT_S, else 408."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await handler(request)
    except TimeoutError:
        body = {"error": "request took too long", "hint": "send the whole body at once"}
        return web.json_response(body, status=408)
