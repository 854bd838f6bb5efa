"""A fresh database per measurement, on one server, so no run sees another's rows."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ENV_VAR = "JOBD_BENCH_DATABASE_URL"
CONNECT_ATTEMPTS = 10
CONNECT_RETRY_S = 3.0


async def connect(url: str, **kwargs: Any) -> asyncpg.Connection:
    """Connect, waiting out a server that is briefly full (a shared machine's test suites)."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return await asyncpg.connect(url, **kwargs)
        except asyncpg.TooManyConnectionsError:
            if attempt == CONNECT_ATTEMPTS:
                raise
            await asyncio.sleep(CONNECT_RETRY_S)
    raise AssertionError("unreachable")


def server_url() -> str:
    """The admin URL of the benchmark server (`$JOBD_BENCH_DATABASE_URL` or loopback 5432)."""
    return os.environ.get(ENV_VAR) or DEFAULT_SERVER_URL


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@asynccontextmanager
async def fresh_database(admin_url: str, prefix: str = "bench") -> AsyncIterator[str]:
    """Create an empty database, yield its URL, drop it (even if the runner failed)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield with_database(admin_url, name)
        finally:
            # FORCE (Postgres 13+): a runner that died may have left sessions behind.
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def server_version(admin_url: str) -> str:
    conn = await connect(admin_url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
