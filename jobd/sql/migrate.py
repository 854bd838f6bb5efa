"""Install or upgrade jobd's schema, safely when several daemons start at once.

A fresh database gets `schema.sql` with the baseline migrations recorded as applied; an
existing install gets the numbered migrations it lacks, in order. Either way the
functions (`functions.sql`) are then created or replaced. All of it runs in one
transaction under a transaction-level advisory lock, so concurrent starters wait for each
other and none sees half a schema.
"""

from __future__ import annotations

import zlib

from jobd.sql import BASELINE, functions_sql, migrations, render, schema_sql
from jobd.sql.driver import Connection

# Advisory lock key: a stable number derived from the schema name, so two jobd installs
# in different schemas of one database do not serialize each other.
_LOCK_NAMESPACE = 0x6A6F6264  # "jobd"


def lock_key(schema: str) -> int:
    return (_LOCK_NAMESPACE << 32 | zlib.crc32(schema.encode())) - (1 << 63)


async def applied_versions(conn: Connection, schema: str) -> set[int] | None:
    """Versions recorded in the install at `schema`, or None when jobd is not installed."""
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{render('{schema}', schema)}.migrations"
    )
    if not exists:
        return None
    rows = await conn.fetch(render("SELECT version FROM {schema}.migrations", schema))
    return {row["version"] for row in rows}


async def migrate(conn: Connection, schema: str = "jobd") -> list[int]:
    """Bring the install at `schema` up to date; returns the versions applied now."""
    record = render("INSERT INTO {schema}.migrations (version, name) VALUES ($1, $2)", schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(schema))
        applied = await applied_versions(conn, schema)
        if applied is None:
            await conn.execute(schema_sql(schema))
            done = [*BASELINE, *migrations(schema)]
            for migration in done:
                await conn.execute(record, migration.version, migration.name)
        else:
            done = [m for m in migrations(schema) if m.version not in applied]
            for migration in done:
                await conn.execute(migration.sql)
                await conn.execute(record, migration.version, migration.name)
        await conn.execute(functions_sql(schema))
        return [m.version for m in done]


async def pending_versions(conn: Connection, schema: str = "jobd") -> list[int]:
    """Migrations not yet applied (all of them when jobd is not installed)."""
    applied = await applied_versions(conn, schema) or set()
    known = [*BASELINE, *migrations(schema)]
    return [m.version for m in known if m.version not in applied]
