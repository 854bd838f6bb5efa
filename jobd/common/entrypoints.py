"""Python entrypoints named in the configuration: `"package.module:attr.path"`.

Actions, actor persisters and tenant lists all name user code this way; they import it
with `load_entrypoint` (a clear `EntrypointError` naming the entrypoint, never a bare
ImportError) and call it with `call_maybe_async`, which awaits an async callable on the
loop and runs a plain function in a worker thread so it cannot block the loop.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
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


def load_callable(text: str, *, context: str = "") -> Callable[..., Any]:
    """`load_entrypoint`, and the target must be callable."""
    target = load_entrypoint(text, context=context)
    if not callable(target):
        raise EntrypointError(f"python entrypoint {text!r}{context} is not callable")
    return target  # type: ignore[no-any-return]


def is_async_callable(fn: Any) -> bool:
    """True for `async def` functions and objects whose `__call__` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 (we need the bound __call__ itself)
    )


async def call_maybe_async(
    fn: Callable[..., Any], *args: Any, executor: Executor | None = None
) -> Any:
    """Await `fn(*args)` when async, else run it in a thread (of `executor`, default the
    loop's); await what it returns if that is awaitable (a sync function handing back a
    coroutine)."""
    if is_async_callable(fn):
        result = await fn(*args)
    elif executor is None:
        result = await asyncio.to_thread(fn, *args)
    else:
        result = await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result
