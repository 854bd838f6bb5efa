"""Request plumbing of the admin API: JSON errors, the token check, listen addresses, and
validation of request bodies. Handlers live in `jobd.admin.handlers`."""

from __future__ import annotations

import hmac
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import structlog
from aiohttp import web

from jobd.admin.metrics import Metrics, default_metrics
from jobd.common.jsontext import json_text
from jobd.config.listen import is_loopback as is_loopback  # the admin server's imports
from jobd.config.listen import parse_listen as parse_listen
from jobd.engine import ops
from jobd.errors import DatabaseError, JobdError, RowNotFound, UnknownTrigger, UsageError
from jobd.model import Spec
from jobd.sql.driver import Pool
from jobd.sql.values import json_problem, loads_json, text_problem

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
    # The daemons' pool (jobd.daemon.supervisor: pool_size(spec), POOL_HEADROOM): a queue
    # scaled beyond what it holds is refused. None: limits are not checked against it.
    capacity: ops.PoolCapacity | None = None


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
        if not _bearer_matches(request.headers.get("Authorization", ""), token):
            hint = "send the header Authorization: Bearer <admin.token>"
            return error_response(401, "missing or wrong bearer token", hint)
        return await handler(request)

    return auth


def _bearer_matches(header: str, token: str) -> bool:
    """Constant-time comparison of `Authorization: Bearer <token>`. Header bytes that are
    not UTF-8 arrive as surrogates: they are compared as they are (surrogatepass keeps
    the encoding one-to-one), so no header value can raise here, or match by accident."""
    scheme, _, given = header.partition(" ")
    expected = token.encode("utf-8", "surrogatepass")
    offered = given.strip().encode("utf-8", "surrogatepass")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered, expected)


def _scrubbed(text: str, request: web.Request) -> str:
    """`text` without the request's credentials, should an exception quote them."""
    credential = request.headers.get("Authorization", "").partition(" ")[2].strip()
    return text.replace(credential, "[redacted]") if len(credential) >= 4 else text


def _data_error(exc: asyncpg.DataError) -> str:
    """The database's (or the driver's) word on a value it could not take, shortened."""
    text = str(getattr(exc, "message", None) or exc).removeprefix("jobd: ")
    return text if len(text) <= 300 else text[:297] + "..."


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
    except (UnknownTrigger, ops.UnknownQueue) as exc:
        hint = 'send {"create": true} to create it' if isinstance(exc, ops.UnknownQueue) else ""
        return error_response(404, str(exc), hint)
    except ops.QueueInUse as exc:
        return error_response(409, str(exc))
    except asyncpg.DataError as exc:  # a value of the wrong type or range (SQLSTATE 22...)
        return error_response(400, _data_error(exc), "check the types of the values sent")
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
        log.error(
            "admin.internal_error",
            path=request.path,
            error=_scrubbed(repr(exc), request),
            exception=_scrubbed("".join(traceback.format_exception(exc)), request),
        )
        return error_response(500, "internal error", "see the daemon log (admin.internal_error)")


# -- request parsing -------------------------------------------------------------------


async def read_body(request: web.Request) -> dict[str, Any]:
    """The JSON object body ({} when empty)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = loads_json(raw)
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
    for key, value in body.items():
        key_problem = text_problem(key)
        problem = f"a key {key_problem}" if key_problem else json_problem(value, key)
        if problem:
            raise ApiError(400, f"request body: {problem}", "send text without NUL, as UTF-8")
    return body


def query_text(request: web.Request, name: str) -> str | None:
    """A query parameter Postgres can take as text (400 otherwise), or None."""
    value = request.query.get(name)
    problem = None if value is None else text_problem(value)
    if problem:
        raise ApiError(400, f"query parameter {name!r} {problem}")
    return value


def path_text(request: web.Request, name: str) -> str:
    """A path segment Postgres can take as text (400 otherwise)."""
    value = request.match_info[name]
    problem = text_problem(value)
    if problem:
        raise ApiError(400, f"{name} in the path {problem}")
    return value


def body_field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    wrong_bool = isinstance(value, bool) and kind is not bool  # JSON true is no integer
    if value is not None and (not isinstance(value, kind) or wrong_bool):
        raise ApiError(400, f"{name!r} must be {what}, got {type(value).__name__}")
    return value


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field(s) {unknown}", f"allowed: {sorted(allowed)}")
