"""Shared fixtures: a real Postgres server, a fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres import TestDatabases, find_server_url


async def _prepare_template(url: str) -> None:
    """Everything every test database starts with (jobd's own schema, once it exists)."""
    from tests.template import prepare

    await prepare(url)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[TestDatabases]:
    dbs = TestDatabases(find_server_url())
    dbs.create_template(_prepare_template)
    yield dbs
    dbs.drop_template()


@pytest.fixture
def database_url(pg_databases: TestDatabases) -> Iterator[str]:
    """A URL to a fresh database of its own, cloned from the session template."""
    name, url = pg_databases.clone()
    yield url
    pg_databases.drop(name)
