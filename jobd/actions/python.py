"""The `python` action: call `"package.module:callable"` with the `jobd.ActionContext`.

    nightly_summary:
      python: "myapp.reports:summary"

The entrypoint is imported once, when the daemon builds its actions, so a typo stops the
start with an `EntrypointError` naming it. An `async def` (or an object whose `__call__`
is one) is awaited on the daemon's loop and may use `ctx.conn`, the connection of the job's
transaction: what it writes commits with the job's completion, or rolls back with it. A
plain function runs in a worker thread so it cannot block the loop; it must not touch
`ctx.conn` (an asyncpg connection belongs to the loop). Each action has its own threads
(as many as its jobs can run at once: `threads`), daemonic (jobd.common.threads): a call
that hangs holds one of its own action's threads until it returns, never another
action's, and never keeps the daemon from stopping; a trigger's `timeout` stops waiting
for it and frees the job's slot, it cannot stop the thread.

The return value is the action's result (`ctx.response` and `{response: path}` in
on_success; it is not recorded on the job).
`jobd.Snooze`, `jobd.Cancel`, `jobd.Discard` and every other exception
propagate unchanged to the worker, which decides what they mean; a BaseException that is
not an Exception (SystemExit, KeyboardInterrupt, ...) arrives as `UserCodeExit`, a failed
attempt like any other.
"""

from __future__ import annotations

from typing import Any

from jobd.actions.base import ActionContext
from jobd.common.entrypoints import call_maybe_async, is_async_callable, load_callable
from jobd.common.threads import DaemonThreads
from jobd.sql.db import lend


class PythonAction:
    """Runs one `python` action."""

    def __init__(self, name: str, entrypoint: str, *, threads: int = 10) -> None:
        self.name = name
        self.entrypoint = entrypoint
        self.fn = load_callable(entrypoint, context=f" (action {name!r})")
        self.threads = None if is_async_callable(self.fn) else DaemonThreads(threads, name)

    async def run(self, ctx: ActionContext) -> Any:
        lend(ctx.conn)  # user code may leave session state on it: reset at release
        return await call_maybe_async(self.fn, ctx, executor=self.threads)
