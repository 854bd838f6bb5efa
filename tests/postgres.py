"""Find the Postgres server the tests use, and hand out a fresh database per test.

Order: `$JOBD_TEST_DATABASE_URL` (the word `embedded` forces the embedded server), then a
server on 127.0.0.1:5432 (user postgres), then an embedded server from pgserver under
`.jobd/test-pg`. Each test gets a database cloned from a session template, so tests never
see each other's rows.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_embedded_handles: list[object] = []  # keeps the embedded server alive for the session


def _embedded_url() -> str:
    from jobd.daemon.embedded import start_embedded

    url, handle = start_embedded(ROOT / ".jobd" / "test-pg")
    _embedded_handles.append(handle)
    return url


def find_server_url() -> str:
    """The admin URL of the server the tests use (a database we may CREATE DATABASE from)."""
    url = os.environ.get("JOBD_TEST_DATABASE_URL")
    if url == "embedded":  # force the embedded server even when a local one runs
        return _embedded_url()
    if url:
        return url
    if _port_open("127.0.0.1", 5432):
        return LOCAL_URL
    return _embedded_url()


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class TestDatabases:
    """A template database prepared once, cloned per test, dropped afterwards."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.template = f"jobd_tmpl_{uuid.uuid4().hex[:10]}"

    def create_template(self, prepare: Callable[[str], Awaitable[None]]) -> None:
        async def go() -> None:
            await _admin(self.server_url, f'CREATE DATABASE "{self.template}"')
            await prepare(with_database(self.server_url, self.template))

        asyncio.run(go())

    def clone(self) -> tuple[str, str]:
        name = f"jobd_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(self.server_url, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name, with_database(self.server_url, name)

    def drop(self, name: str) -> None:
        asyncio.run(_admin(self.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def drop_template(self) -> None:
        self.drop(self.template)
