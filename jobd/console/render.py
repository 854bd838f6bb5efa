"""Pages from the package's jinja2 templates, and errors as pages.

Autoescaping is on for every template: a job's args, errors or a row's values are shown
as text, never as markup. Each page gets the session's CSRF token for its forms, the
messages of the last action (flash), and the navigation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
import structlog
from aiohttp import web

import jobd
from jobd.admin.plumbing import ApiError
from jobd.console.access import CURRENT, Refused
from jobd.engine import ops
from jobd.errors import DatabaseError, JobdError, RowNotFound, UnknownTrigger, UsageError

log = structlog.get_logger("jobd.console")

STATIC_DIR = Path(str(resources.files("jobd.console").joinpath("static")))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Headers of every page: nothing from elsewhere, no framing, no caching of job data.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _json(value: Any) -> str:
    return json.dumps(ops.to_jsonable(value), indent=2, sort_keys=True, ensure_ascii=False)


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ago(value: Any) -> str:
    if not isinstance(value, datetime):
        return ""
    seconds = (datetime.now(UTC) - value).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 90:
        text = f"{seconds:.0f}s"
    elif seconds < 5400:
        text = f"{seconds / 60:.0f}m"
    elif seconds < 172_800:
        text = f"{seconds / 3600:.0f}h"
    else:
        text = f"{seconds / 86400:.0f}d"
    return f"in {text}" if future else f"{text} ago"


def _lastline(value: Any) -> str:
    """The last line of an error (a traceback's exception line), at most 300 characters."""
    lines = str(value or "").strip().splitlines()
    return lines[-1][:300] if lines else ""


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("jobd.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["json"] = _json
    env.filters["when"] = _when
    env.filters["ago"] = _ago
    env.filters["lastline"] = _lastline
    env.globals["version"] = jobd.__version__
    return env


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """`template` rendered with `context`, the session's CSRF token and its messages."""
    session = CURRENT.get()
    flash = list(session.flash) if session is not None else []
    if session is not None:
        session.flash.clear()
    text = (
        environment()
        .get_template(template)
        .render(
            csrf=session.csrf if session is not None else "",
            signed_in=session is not None,
            flash=flash,
            path=request.path,
            **context,
        )
    )
    return web.Response(text=text, status=status, content_type="text/html", headers=PAGE_HEADERS)


def _status(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, RowNotFound | UnknownTrigger | ops.UnknownQueue):
        return 404
    if isinstance(exc, ops.QueueInUse):
        return 409
    if isinstance(exc, UsageError | asyncpg.DataError):
        return 400
    if isinstance(exc, DatabaseError | OSError | TimeoutError):
        return 503
    return 422


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Failures as a page saying what went wrong (internals stay in the log)."""
    try:
        return await handler(request)
    except Refused as exc:
        return page(request, "error.html", 403, title="Refused", message=exc.why)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return page(request, "error.html", exc.status, title=exc.reason, message=exc.reason)
    except (ApiError, JobdError, asyncpg.DataError, OSError, TimeoutError) as exc:
        message = exc.error if isinstance(exc, ApiError) else str(exc)
        return page(request, "error.html", _status(exc), title="Not done", message=message)
    except Exception as exc:
        log.error("console.internal_error", path=request.path, error=repr(exc), exc_info=exc)
        message = "internal error: see the daemon log (console.internal_error)"
        return page(request, "error.html", 500, title="Internal error", message=message)
