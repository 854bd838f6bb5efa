"""The pytest plugin of jobd.testing, registered through the `pytest11` entry point (it
loads wherever jobd is installed; its fixtures cost nothing until a test asks for them).

Fixtures:

- `jobd_database_url`: a fresh database for the test, with jobd's schema migrated into
  it, dropped afterwards. It is created on the server `--jobd-database-url` names, else
  `$JOBD_TEST_DATABASE_URL` (the word `embedded`: jobd's embedded server, which needs the
  `embedded` extra), else postgresql://postgres@127.0.0.1:5432/postgres: a URL whose
  user may create databases.
- `jobd_start`: `jobd = await jobd_start("jobd.yaml")` starts a `JobdTest` on that
  database (closed after the test). Create the tables the configuration names first.

`jobd_start` is an async fixture: pytest-asyncio runs it (`pip install 'pgjobd[testing]'`
brings both).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from jobd.sql.ident import quote_ident
from jobd.sql.migrate import migrate
from jobd.testing import JobdTest

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
StartJobd = Callable[..., Awaitable[JobdTest]]
_embedded: list[Any] = []  # the embedded server's handle, kept for the session


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--jobd-database-url",
        default=None,
        help="Postgres server for jobd.testing's fresh databases (a user that may create "
        "databases); default $JOBD_TEST_DATABASE_URL, else " + DEFAULT_SERVER,
    )


def server_url(config: pytest.Config) -> str:
    """The server URL the fixtures create their databases on (see the module docs)."""
    given = config.getoption("--jobd-database-url") or os.environ.get("JOBD_TEST_DATABASE_URL")
    if given == "embedded":
        if not _embedded:
            from jobd.daemon.embedded import start_embedded

            url, handle = start_embedded(Path(".jobd") / "test-pg")
            _embedded.append((url, handle))
        return str(_embedded[0][0])
    return given or DEFAULT_SERVER


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def _create(server: str, name: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()
    url = _with_database(server, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url


async def _drop(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
def jobd_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with jobd's schema (in schema `jobd`), dropped after the test."""
    server = server_url(request.config)
    name = f"jobd_test_{uuid.uuid4().hex[:12]}"
    # Its own event loop: this fixture is synchronous, so it works in any async mode.
    url = asyncio.run(_create(server, name))
    try:
        yield url
    finally:
        asyncio.run(_drop(server, name))


def _async_fixture(fn: Any) -> Any:
    """pytest-asyncio's fixture decorator (works in its strict and auto modes)."""
    try:
        import pytest_asyncio
    except ImportError:  # without it, asking for the fixture says what to install

        @pytest.fixture
        def missing() -> None:
            raise pytest.UsageError(
                "jobd_start is an async fixture: install pytest-asyncio "
                "(pip install 'pgjobd[testing]')"
            )

        missing.__name__ = fn.__name__
        return missing
    return pytest_asyncio.fixture(fn)


@_async_fixture
async def jobd_start(jobd_database_url: str) -> AsyncIterator[StartJobd]:
    """`await jobd_start(config, env=None)`: a JobdTest on the test's database."""
    started: list[JobdTest] = []

    async def start(config: str | Path, env: Mapping[str, str] | None = None) -> JobdTest:
        values = {**os.environ, **(env or {}), "DATABASE_URL": jobd_database_url}
        jobd = await JobdTest.start(config, jobd_database_url, env=values)
        started.append(jobd)
        return jobd

    try:
        yield start
    finally:
        for jobd in started:
            await jobd.close()
