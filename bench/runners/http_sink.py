"""A no-op webhook receiver for the HTTP benchmarks, in its own process, on uvloop.

    python -m bench.runners.http_sink        # prints its loopback port, serves until stdin closes

- `POST /hooks/{key}`: reads the body, answers `{"ok": true, "ref": key}` (200) at once;
- `POST /slow/{key}`: the same after `SLOW_S` (the harness's check that a mode holds
  nothing while an action runs);
- `GET /inflight`: the keys of the slow requests being answered, as a JSON list.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

SLOW_S = 2.0


async def serve() -> None:
    inflight: set[str] = set()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True, "ref": request.match_info["key"]})

    async def slow(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        inflight.add(key)
        try:
            await request.read()
            await asyncio.sleep(SLOW_S)
        finally:
            inflight.discard(key)
        return web.json_response({"ok": True, "ref": key})

    async def in_flight(request: web.Request) -> web.Response:
        return web.json_response(sorted(inflight))

    app = web.Application()
    app.router.add_post("/hooks/{key}", hook)
    app.router.add_post("/slow/{key}", slow)
    app.router.add_get("/inflight", in_flight)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve())
