"""A local HTTP sink for the example's webhooks: answers every request with 200 and a small
JSON body (so `{response: "data.id"}` has something to read), and logs one line each."""

from __future__ import annotations

import itertools
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("jobd.demo")
_ids = itertools.count(1)


async def _handle(request: web.Request) -> web.Response:
    await request.read()
    ref = f"ref-{next(_ids)}"
    log.info("demo.sink", method=request.method, path=request.path, ref=ref)
    return web.json_response({"data": {"id": ref}})


async def start_sink(host: str = "127.0.0.1", port: int = 8371) -> Any:
    """Start the sink; returns the runner (call `await runner.cleanup()` to stop)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
