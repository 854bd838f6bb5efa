"""Request plumbing of the admin API: JSON errors, the token check, listen addresses, and
validation of request bodies. Handlers live in `jobd.admin.handlers`."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiohttp import web

from jobd.admin.metrics import Metrics, default_metrics
from jobd.common.jsontext import json_text
from jobd.engine import ops
from jobd.errors import DatabaseError, JobdError, RowNotFound, UnknownTrigger, UsageError
from jobd.model import Spec
from jobd.sql.driver import Pool

log = structlog.get_logger("jobd.admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


class EngineView(Protocol):
    """What the admin listener reads of the running engine."""

    @property
    def node_id(self) -> str: ...
    @property
    def is_leader(self) -> bool: ...
    @property
    def is_running(self) -> bool: ...
    @property
    def running(self) -> int: ...


@dataclass
class AdminDeps:
    """What the admin app serves. Mutable on purpose: on a reload the daemon swaps `spec`
    and `engine` in place and the running server serves the new ones."""

    pool: Pool
    schema: str
    spec: Spec | None = None  # resource names for validation, configured queues
    engine: EngineView | None = None  # None until the engine runs: /readyz says 503
    metrics: Metrics = field(default_factory=default_metrics)


DEPS_KEY = web.AppKey("deps", AdminDeps)


def deps_of(request: web.Request) -> AdminDeps:
    return request.app[DEPS_KEY]


class ApiError(Exception):
    """An error answered as JSON: `status`, `error`, `hint`."""

    def __init__(self, status: int, error: str, hint: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.hint = status, error, hint


def error_response(status: int, error: str, hint: str = "") -> web.Response:
    body: dict[str, str] = {"error": error}
    if hint:
        body["hint"] = hint
    return web.json_response(body, status=status)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(ops.to_jsonable(data), status=status, dumps=json_text)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) into its parts; UsageError when malformed."""
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"admin.listen {listen!r} must be host:port, e.g. 127.0.0.1:9187")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- middleware ------------------------------------------------------------------------


def auth_middleware(token: str | None) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        if token is None:
            if not is_loopback(request.remote or ""):
                return error_response(
                    403,
                    "the API without a token serves loopback only",
                    "set admin.token and send Authorization: Bearer",
                )
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            hint = "send the header Authorization: Bearer <admin.token>"
            return error_response(401, "missing or wrong bearer token", hint)
        return await handler(request)

    return auth


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON error; internals stay in the log."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.hint)
    except web.HTTPRequestEntityTooLarge:
        return error_response(
            413, "request body too large", f"send at most {request.app[MAX_BODY_KEY]} bytes"
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason, "see docs/http-api.md for the endpoints")
    except RowNotFound as exc:
        return error_response(404, str(exc), "check the primary key (and tenant)")
    except UnknownTrigger as exc:
        return error_response(404, str(exc))
    except UsageError as exc:
        return error_response(400, str(exc))
    except DatabaseError as exc:
        return error_response(503, str(exc), "the database is unreachable; retry later")
    except JobdError as exc:
        return error_response(422, str(exc))
    except (TimeoutError, OSError) as exc:
        log.warning("admin.request_failed", path=request.path, error=repr(exc))
        return error_response(503, "the database is unreachable", "retry later")
    except Exception as exc:
        log.error("admin.internal_error", path=request.path, error=repr(exc), exc_info=True)
        return error_response(500, "internal error", "see the daemon log (admin.internal_error)")


# -- request parsing -------------------------------------------------------------------


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object body ({} when empty)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:  # nesting deeper than the parser's stack: not an internal error
        hint = 'send a flat JSON object, e.g. {"primary_key": {"id": 1}}'
        raise ApiError(400, "request body nests too deeply", hint) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            f"request body is not valid JSON: {exc}",
            'send a JSON object, e.g. {"primary_key": {"id": 1}}',
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


def body_field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ApiError(400, f"{name!r} must be {what}, got {type(value).__name__}")
    return value


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}", f"allowed: {sorted(allowed)}")
