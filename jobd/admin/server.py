"""The admin listener: the aiohttp app (routes, middlewares) and the server that runs it.

    deps = AdminDeps(pool=pool, schema="jobd", spec=spec, engine=engine)
    server = AdminServer("127.0.0.1:9187", token=None, deps=deps)
    await server.start(); ...; await server.stop()

Endpoints (docs/http-api.md): `GET /healthz`, `GET /readyz`, `GET /metrics` (open), and under
`/api/` (Bearer token): triggers and schedules run, jobs list/show/retry/cancel, queues
list/pause/resume/scale, status. Without a token the API is served on loopback listeners
only: `start()` refuses any other address. Every error is a JSON body
`{"error": ..., "hint": ...}` with a 4xx (or 503) status; never a traceback. The listener
is bounded (connections, request-head and request deadlines, keep-alive): see
`jobd.admin.bounds`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from jobd.admin.bounds import BoundedRunner, request_timeout
from jobd.admin.handlers import routes
from jobd.admin.plumbing import (
    DEPS_KEY,
    MAX_BODY_KEY,
    AdminDeps,
    auth_middleware,
    errors_middleware,
    is_loopback,
    parse_listen,
)
from jobd.errors import JobdError

log = structlog.get_logger("jobd.admin")

MAX_BODY_BYTES = 1024 * 1024

__all__ = ["AdminDeps", "AdminServer", "build_app"]


def build_app(
    deps: AdminDeps, *, token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES
) -> web.Application:
    app = web.Application(
        client_max_size=max_body_bytes,
        middlewares=[request_timeout, errors_middleware, auth_middleware(token)],
    )
    app[DEPS_KEY] = deps
    app[MAX_BODY_KEY] = max_body_bytes
    app.add_routes(routes)
    return app


class AdminServer:
    """The admin listener on `listen` ("host:port"; port 0 = any free port, see `.port`)."""

    def __init__(
        self,
        listen: str,
        token: str | None,
        deps: AdminDeps,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self.token = token or None
        self.deps = deps
        self.app = build_app(deps, token=self.token, max_body_bytes=max_body_bytes)
        self._runner: BoundedRunner | None = None

    async def start(self) -> None:
        """Listen; refuses a non-loopback address without a token (JobdError)."""
        if self.token is None and not is_loopback(self.host):
            raise JobdError(
                f"admin.listen {self.host}:{self.port} is not a loopback address and "
                "admin.token is not set: set admin.token "
                "(e.g. admin: {token: ${JOBD_ADMIN_TOKEN}}) or listen on 127.0.0.1"
            )
        runner = BoundedRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise JobdError(f"admin listener cannot bind {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple):
                self.port = int(address[1])
                break
        log.info("admin.listening", host=self.host, port=self.port, token=self.token is not None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
