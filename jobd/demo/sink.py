"""A local HTTP sink for the example's webhooks: answers every request with 200 and a small
JSON body (so `{response: "data.id"}` has something to read), and logs one line each."""

from __future__ import annotations

import itertools
import os
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from jobd.errors import JobdError

log = structlog.get_logger("jobd.demo")
_ids = itertools.count(1)
DEFAULT_SINK_URL = "http://127.0.0.1:8371"  # config.example.yaml's default for ${JOBD_DEMO_SINK}


class SinkUnavailable(JobdError):
    """The demo sink cannot listen where the example config's webhooks point."""

    exit_code = 1


def sink_url() -> str:
    """Where the example's webhooks go: `$JOBD_DEMO_SINK`, as config.example.yaml reads it."""
    return os.environ.get("JOBD_DEMO_SINK") or DEFAULT_SINK_URL


def sink_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None:
        raise SinkUnavailable(
            f"JOBD_DEMO_SINK={url!r}: expected http://HOST:PORT, e.g. http://127.0.0.1:8372"
        )
    return parts.hostname, port


async def _handle(request: web.Request) -> web.Response:
    await request.read()
    ref = f"ref-{next(_ids)}"
    log.info("demo.sink", method=request.method, path=request.path, ref=ref)
    return web.json_response({"data": {"id": ref}})


async def start_sink(url: str | None = None) -> Any:
    """Start the sink at `url` (default `sink_url()`); returns the runner (call `await
    runner.cleanup()` to stop). A taken port is a SinkUnavailable saying how to move it."""
    url = url or sink_url()
    host, port = sink_address(url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise SinkUnavailable(
            f"the demo's HTTP sink cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "is another `jobd demo` running? Move it with JOBD_DEMO_SINK=http://127.0.0.1:PORT "
            "(and the admin listener with JOBD_ADMIN_LISTEN=127.0.0.1:PORT)"
        ) from exc
    return runner
