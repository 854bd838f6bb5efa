"""Python entrypoints named in the configuration: `"package.module:attr.path"`.

Actions, actor persisters and tenant lists all name user code this way; they import it
with `load_entrypoint` (a clear `EntrypointError` naming the entrypoint, never a bare
ImportError) and call it with `call_maybe_async`, which awaits an async callable on the
loop and runs a plain function in a worker thread (jobd.common.threads) so it cannot block
the loop, and which turns whatever the code raises into an exception the caller handles.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from jobd.common.threads import DaemonThreads
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


class UserCodeExit(JobdError):
    """User code raised a BaseException that is not an error (SystemExit,
    KeyboardInterrupt, GeneratorExit or a subclass of BaseException): a failed call, not
    a reason for the daemon to stop."""


# Threads for synchronous user code outside actions (persisters, tenant lists); actions
# have pools of their own (jobd.actions.python).
SHARED_THREADS = DaemonThreads(16, "jobd-user-code")


async def call_maybe_async(
    fn: Callable[..., Any], *args: Any, executor: Executor | None = None
) -> Any:
    """Await `fn(*args)` when async, else run it in a thread (of `executor`, default
    `SHARED_THREADS`); await what it returns if that is awaitable (a sync function handing
    back a coroutine).

    Every exception the user's code raises reaches the caller as an exception: a
    `BaseException` that is not an `Exception` (SystemExit in a handler, a custom
    BaseException) becomes `UserCodeExit`, because asyncio would otherwise let it stop the
    whole event loop. The engine's own cancellation passes through unchanged."""
    try:
        if is_async_callable(fn):
            result = await fn(*args)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(executor or SHARED_THREADS, fn, *args)
        if inspect.isawaitable(result):
            result = await result
    except (Exception, asyncio.CancelledError):
        raise
    except BaseException as exc:
        raise UserCodeExit(f"{type(exc).__name__} raised by {_named(fn)}: {exc}") from exc
    return result


def _named(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}:{getattr(fn, '__qualname__', type(fn).__name__)}"
