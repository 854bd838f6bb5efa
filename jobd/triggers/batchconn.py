"""`ctx.conn` for the jobs of a batch (jobd/triggers/worker.py).

The jobs of a batch share ONE connection and ONE transaction, and their actions run
concurrently. A job's action (or its actor lookup, or a non-update on_success) that uses
`ctx.conn` reaches the shared connection through its own `JobConnection`: on first use it
waits for the connection, opens a savepoint of its own and keeps both until the job's
work ends, when the savepoint is released (the job's writes stay, to commit with the
batch) or rolled back (a failed job's writes vanish, the others' stay). So a job that
uses the database runs its database work one at a time with the batch's other such jobs;
a job that never touches `ctx.conn` costs nothing here.

With `action_in_transaction: false` nothing is held while the action runs: its `ctx.conn`
is a `NoConnection`, which says so on any use.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from jobd.errors import JobdError
from jobd.sql.db import lend
from jobd.sql.driver import Connection

# The asyncpg Connection methods that talk to the server (awaitables): each enters the
# job's savepoint first. Other attributes pass through unchanged.
_QUERIES = frozenset(
    {
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "fetchmany",
        "prepare",
        "copy_from_table",
        "copy_from_query",
        "copy_to_table",
        "copy_records_to_table",
    }
)


class SharedConnection:
    """The batch's connection, and whose turn it is to use it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.turn = asyncio.Lock()


class JobConnection:
    """One job's way to the batch's connection, inside a savepoint of its own."""

    # Not the pool's connection itself: jobd.sql.db.lend (called for every python action)
    # finds nothing to mark here; `enter` marks the connection once a job really uses it.
    _con = None

    def __init__(self, shared: SharedConnection, job_id: int) -> None:
        self._shared = shared
        self._savepoint = f"jobd_job_{job_id}"
        self.entered = False  # the job used the connection (and holds its turn)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._shared.conn, name)
        if name not in _QUERIES:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.enter()
            return await target(*args, **kwargs)

        return call

    def transaction(self, **options: Any) -> _Nested:
        """A nested transaction (a savepoint inside the job's), as asyncpg's."""
        return _Nested(self, options)

    async def enter(self) -> None:
        """Take the connection's turn and open the job's savepoint (once)."""
        if self.entered:
            return
        await self._shared.turn.acquire()
        try:
            lend(self._shared.conn)  # user code had it: reset it when it goes back
            await self._shared.conn.execute(f"SAVEPOINT {self._savepoint}")
        except BaseException:
            self._shared.turn.release()
            raise
        self.entered = True

    async def close(self, *, keep: bool) -> None:
        """End the job's use: keep its writes (release the savepoint) or drop them (roll
        back to it), and give the turn to the next job."""
        if not self.entered:
            return
        self.entered = False
        try:
            if keep:
                await self._shared.conn.execute(f"RELEASE SAVEPOINT {self._savepoint}")
            else:
                await self._shared.conn.execute(
                    f"ROLLBACK TO SAVEPOINT {self._savepoint}; RELEASE SAVEPOINT {self._savepoint}"
                )
        finally:
            self._shared.turn.release()


class _Nested:
    def __init__(self, job: JobConnection, options: dict[str, Any]) -> None:
        self._job = job
        self._options = options
        self._inner: Any = None

    async def __aenter__(self) -> Any:
        await self._job.enter()
        self._inner = self._job._shared.conn.transaction(**self._options)
        return await self._inner.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return await self._inner.__aexit__(exc_type, exc, tb)


class ConnectionUnavailable(JobdError, AttributeError):
    """`ctx.conn` used by an action that runs outside the job's transaction."""


class NoConnection:
    """`ctx.conn` of an action run with `action_in_transaction: false`."""

    def __init__(self, resource: str, trigger: str) -> None:
        self._where = f"{resource}.{trigger}"

    def __getattr__(self, name: str) -> Any:
        raise ConnectionUnavailable(
            f"ctx.conn is not available: trigger {self._where} runs its action with "
            "action_in_transaction: false, so no connection or transaction is held while "
            "it runs; write in on_success (it runs in the job's transaction), or set "
            "action_in_transaction: true"
        )
