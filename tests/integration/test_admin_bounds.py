"""The admin listener's connection cap (jobd.admin.bounds) with real sockets: a new
connection takes the place of the oldest one that has not sent a request head, and is
refused only when every held connection is serving a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from jobd.admin.bounds import BoundedRunner, BoundedServer

HEAD = b"GET /slow HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, BoundedServer, asyncio.Event]]:
    """A bounded aiohttp listener on a free loopback port, capped at 2 connections; its
    `/slow` answers when the event is set, `/healthz` at once."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="slow")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/slow", slow)
    app.router.add_get("/healthz", healthz)
    runner = BoundedRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = runner.server
    assert isinstance(server, BoundedServer)
    server.max_connections = 2
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, server, release
    finally:
        release.set()
        await runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), 2) == b""
    except (ConnectionError, TimeoutError):
        return True


async def get(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_a_new_connection_evicts_the_oldest_silent_one(
    listener: tuple[int, BoundedServer, asyncio.Event],
) -> None:
    """Proves two connections that sent half a head fill the cap, a `/healthz` is still
    answered, and it was the oldest silent connection that the server closed for it."""
    port, server, _ = listener
    oldest = await asyncio.open_connection("127.0.0.1", port)
    newer = await asyncio.open_connection("127.0.0.1", port)
    for _, writer in (oldest, newer):
        writer.write(HEAD)  # the blank line that ends the head never comes
    await asyncio.sleep(0.1)
    assert (await get(port, "/healthz")).endswith(b"ok")
    assert await closed_by_server(oldest[0])
    assert not newer[0].at_eof()
    assert server.evicted == 1 and server.refused == 0
    for _, writer in (oldest, newer):
        writer.close()


async def test_a_connection_over_the_cap_is_refused_when_all_are_serving(
    listener: tuple[int, BoundedServer, asyncio.Event],
) -> None:
    """Proves that with both held connections inside a request, a third is closed at once
    (nothing evicted), and the held ones are still answered."""
    port, server, release = listener
    busy = [asyncio.create_task(get(port, "/slow")) for _ in range(2)]
    await asyncio.sleep(0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await closed_by_server(reader)
    writer.close()
    assert server.refused == 1 and server.evicted == 0
    release.set()
    assert all(r.endswith(b"slow") for r in await asyncio.gather(*busy))
