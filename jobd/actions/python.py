"""The `python` action: call `"package.module:callable"` with the `jobd.ActionContext`.

    nightly_summary:
      python: "myapp.reports:summary"

The entrypoint is imported once, when the daemon builds its actions, so a typo stops the
start with `EntrypointError` naming it. An `async def` (or an object whose `__call__` is
one) is awaited on the daemon's loop and may use `ctx.conn`, the connection of the job's
transaction: what it writes commits with the job's completion, or rolls back with it. A
plain function runs in a worker thread (`asyncio.to_thread`) so it cannot block the loop;
it must not touch `ctx.conn` (an asyncpg connection belongs to the loop), and a trigger's
`timeout` cannot stop the thread, only stop waiting for it.

The return value is the action's result (recorded on the job; `{response: path}` in
on_success). `jobd.Snooze`, `jobd.Cancel`, `jobd.Discard` and every other exception
propagate unchanged to the worker, which decides what they mean.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from jobd.errors import JobdError


class EntrypointError(JobdError):
    """A `"module:attribute"` entrypoint could not be imported or is not usable."""

    exit_code = 2


def load_entrypoint(text: str, *, context: str = "") -> Any:
    """Import `"package.module:attr.path"` and return the attribute.

    Raises EntrypointError with the entrypoint's text, `context` (e.g. " (action 'x')")
    and the reason (the module's own import error included: that is what to fix).
    """
    what = f"python entrypoint {text!r}{context}"
    module_name, sep, attr_path = text.partition(":")
    if not sep or not module_name or not attr_path:
        raise EntrypointError(f"{what} must look like 'package.module:name'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # any error raised while importing the user's module
        raise EntrypointError(f"cannot import {what}: {type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise EntrypointError(
                f"cannot import {what}: module {module_name!r} has no attribute {attr_path!r}"
            ) from exc
    return target


def is_async_callable(fn: Any) -> bool:
    """True for `async def` functions and objects whose `__call__` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (we need the bound __call__ itself)
    )


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Await `fn(*args)` when async, else run it in a thread; await what it returns if
    that is awaitable (a sync function handing back a coroutine)."""
    if is_async_callable(fn):
        result = await fn(*args)
    else:
        result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


class PythonAction:
    """Runs one `python` action."""

    def __init__(self, name: str, entrypoint: str) -> None:
        self.name = name
        self.entrypoint = entrypoint
        self.fn = load_entrypoint(entrypoint, context=f" (action {name!r})")
        if not callable(self.fn):
            raise EntrypointError(
                f"python entrypoint {entrypoint!r} (action {name!r}) is not callable"
            )

    async def run(self, ctx: Any) -> Any:
        return await call_maybe_async(self.fn, ctx)
