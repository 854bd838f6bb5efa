"""The database pool, its codecs, and the retry of errors a healthy system still meets.

Expected errors (serialization failures, deadlocks, lost connections, a server restarting)
are retried with jittered backoff by `retrying`; any other error propagates. Loops that must
outlive a database outage use `is_transient` + `backoff_s` to wait and try again.
"""

from __future__ import annotations

import asyncio
import json
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from jobd.common.jsontext import json_text
from jobd.errors import DatabaseError
from jobd.sql import queries
from jobd.sql.driver import Connection, Pool
from jobd.sql.dsn import describe_url as describe_url  # where the daemon reads it
from jobd.sql.dsn import url_error

T = TypeVar("T")

APPLICATION_NAME = "jobd"

# SQLSTATEs of a database that is (briefly) not there: the server restarting or refusing
# connections (57P01-57P03, class 08 matched by prefix below), or full (53300 too many
# connections). A daemon waits them out; they are never anyone's failure.
_OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# SQLSTATEs of a conflict with concurrent work that a second try usually resolves:
# serialization failure, deadlock, lock not available.
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


# What asyncpg raises for a connection string it cannot parse (a port that is not a number
# is a ValueError, one out of range an OverflowError): an error in database.url, not a bug.
URL_ERRORS = (asyncpg.ClientConfigurationError, ValueError, OverflowError)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Codecs so Python dicts and lists go in and out of json/jsonb columns."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json_text, decoder=json.loads, schema="pg_catalog", format="text"
        )


# Pool connections handed to user code (a python action's `ctx.conn`) since their last
# release: only these may carry session state (SET, LISTEN, advisory locks, cursors).
_lent: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


def lend(conn: Connection | None) -> None:
    """`conn` (from jobd's pool) goes to user code: reset it fully when it is released."""
    raw = getattr(conn, "_con", conn)  # the pool's proxy (or a batch's) wraps it
    if isinstance(raw, asyncpg.Connection):  # not: released already, or none at all
        _lent.add(raw)


async def reset_if_lent(conn: asyncpg.Connection) -> None:
    """The pool's reset on release. asyncpg's default runs a reset query (advisory unlock,
    CLOSE ALL, UNLISTEN, RESET ALL) on every release: a round trip for each of jobd's own
    statements, which never leave session state. Only a lent connection, or one left in a
    transaction, needs it."""
    if conn in _lent or conn.is_in_transaction():
        _lent.discard(conn)
        await conn.reset()


async def create_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> Pool:
    """An asyncpg pool with jobd's codecs and `application_name='jobd'`."""
    settings = {"application_name": APPLICATION_NAME}
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            reset=reset_if_lent,
            server_settings=settings,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to the database: {exc}") from exc
    except URL_ERRORS as exc:
        raise url_error(dsn, str(exc)) from None
    return pool  # type: ignore[no-any-return]


async def connect(dsn: str, **kwargs: Any) -> Connection:
    """One connection with jobd's codecs, outside any pool."""
    kwargs.setdefault("server_settings", {"application_name": APPLICATION_NAME})
    conn = await asyncpg.connect(dsn, **kwargs)
    await init_connection(conn)
    return conn  # type: ignore[no-any-return]


async def connect_like(pool: Pool) -> Connection:
    """A new connection, not from `pool`, to the same server with the same settings."""
    # asyncpg keeps the pool's connect arguments on it (also set by set_connect_args).
    args = list(getattr(pool, "_connect_args", []))
    kwargs = dict(getattr(pool, "_connect_kwargs", {}))
    conn = await asyncpg.connect(*args, **kwargs)
    await init_connection(conn)
    return conn  # type: ignore[no-any-return]


# What a database round trip can raise that a background loop survives (logged, retried
# at its next interval): any driver or server error, and the network's. InternalClientError:
# asyncpg found a connection mid-operation after its server restarted ("cannot switch to
# state 12"); the next round trip gets a fresh connection.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    """The database driver says the database is unreachable, restarting or full (not a
    plain OSError or TimeoutError, which a worker's own network calls raise too)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state in _OUTAGE_SQLSTATES or state.startswith("08")
    # InternalClientError: asyncpg found a connection mid-operation after its server went
    # away; the pool discards that connection on release, so a retry gets a fresh one.
    return isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.ConnectionDoesNotExistError,
    )


def is_conflict(exc: BaseException) -> bool:
    """A conflict with concurrent work (serialization failure, deadlock, lock timeout)."""
    return isinstance(exc, asyncpg.PostgresError) and (
        getattr(exc, "sqlstate", None) in _CONFLICT_SQLSTATES
    )


def is_transient(exc: BaseException) -> bool:
    """True for errors that go away when the statement (or connection) is tried again:
    outages, conflicts, and a lost or slow network (jobd's own database round trips)."""
    if isinstance(exc, asyncpg.PostgresError):
        return is_outage(exc) or is_conflict(exc)
    return is_outage(exc) or isinstance(exc, DB_ERRORS)


def backoff_s(attempt: int, *, base_s: float = 0.05, max_s: float = 5.0) -> float:
    """Full-jitter exponential backoff for retries of database work (attempt from 1)."""
    return random.uniform(0, min(max_s, base_s * (2 ** min(attempt, 16))))  # noqa: S311


async def retrying(fn: Callable[..., Awaitable[T]], *args: Any, attempts: int = 5) -> T:
    """Await `fn(*args)`, retrying transient database errors with jittered backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return await fn(*args)
        except Exception as exc:
            if attempt >= attempts or not is_transient(exc):
                raise
            await asyncio.sleep(backoff_s(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


class _RolledBack(Exception):
    """Ends a read-only block: it is rolled back, never committed."""


async def read_only(conn: Connection, work: Callable[[], Awaitable[T]]) -> T:
    """`await work()` in a READ ONLY transaction (a savepoint when `conn` is in one),
    rolled back afterwards: a statement that writes fails instead of writing."""
    result: list[T] = []
    try:
        async with conn.transaction():
            await conn.execute(queries()["set_read_only"])
            result.append(await work())
            raise _RolledBack
    except _RolledBack:
        pass
    return result[0]
