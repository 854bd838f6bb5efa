"""One migration path: an install of release 0.1 (its migrations, kept in
tests/data/sql-0.1) migrated to today builds the same catalog as a fresh install of
schema.sql and functions.sql; migrate is idempotent and safe when run concurrently."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jobd.sql import BASELINE, migrations, render
from jobd.sql.migrate import migrate

RELEASE_0_1 = Path(__file__).parents[2] / "data" / "sql-0.1"

# Catalog of one schema, written so that names carry no schema prefix: tables, columns,
# indexes with definitions, constraints, types with enum labels, table options.
CATALOG_SQL = """
SELECT 'rel' AS kind,
       c.relname || ':' || c.relkind::text || ':'
       || coalesce(array_to_string(c.reloptions, ','), '') AS item
FROM pg_class c WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'col', c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
       || ':' || a.attnotnull || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
       || ':' || a.attidentity::text || ':' || a.attnum
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = $1::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'idx', pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = $1::regnamespace
UNION ALL
SELECT 'con', conname || ':' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = $1::regnamespace
UNION ALL
SELECT 'type', t.typname || ':' || coalesce(
  (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid),
  '')
FROM pg_type t WHERE t.typnamespace = $1::regnamespace AND t.typtype = 'e'
UNION ALL
SELECT 'fn', pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = $1::regnamespace
"""


def all_versions(schema: str) -> list[int]:
    return [m.version for m in (*BASELINE, *migrations(schema))]


async def install_release_0_1(conn: Any, schema: str) -> None:
    """What release 0.1's `jobd migrate` left: its migrations applied and recorded."""
    for version, path in enumerate(sorted(RELEASE_0_1.glob("*.sql")), start=1):
        await conn.execute(render(path.read_text(), schema))
        name = path.stem.split("_", 1)[1]
        await conn.execute(
            render("INSERT INTO {schema}.migrations (version, name) VALUES ($1, $2)", schema),
            version,
            name,
        )


def _unnamed(text: str, schema: str) -> str:
    """`text` with the schema's name (bare, quoted or a string) written S."""
    for spelled in (f'"{schema}".', f"{schema}.", f"'{schema}'"):
        text = text.replace(spelled, "S." if spelled.endswith(".") else "'S'")
    return text


async def _catalog(conn: Any, schema: str) -> list[tuple[str, str]]:
    await conn.execute(f"SET search_path = {schema}")  # so definitions print unqualified
    rows = await conn.fetch(CATALOG_SQL, schema)
    await conn.execute("RESET search_path")
    return sorted((r["kind"], _unnamed(r["item"], schema)) for r in rows)


def _pg_dump(url: str, schema: str) -> str | None:
    exe = shutil.which("pg_dump")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "--schema-only", "--no-owner", "--no-privileges", "-n", schema, url],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    lines = [
        line.replace(f'"{schema}".', "S.").replace(f"{schema}.", "S.").replace(schema, "S")
        for line in out.splitlines()
        # Skip comments, session settings and psql meta lines (\restrict carries a random key).
        if line
        and not line.startswith(("--", "SET ", "\\"))
        and not line.startswith("SELECT pg_catalog.set_config")
    ]
    return "\n".join(lines)


async def test_fresh_install_equals_migrations_in_order(database_url: str) -> None:
    """Proves a fresh install and a release-0.1 install brought up to date by `migrate`
    give the same catalog, functions included (by a catalog query, and by pg_dump
    --schema-only when pg_dump is installed)."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await migrate(conn, "fresh") == all_versions("fresh")
        await install_release_0_1(conn, "stepped")
        assert await migrate(conn, "stepped") == [m.version for m in migrations("stepped")]
        assert await _catalog(conn, "fresh") == await _catalog(conn, "stepped")
    finally:
        await conn.close()
    fresh, stepped = _pg_dump(database_url, "fresh"), _pg_dump(database_url, "stepped")
    if fresh is not None:
        # The ledger differs by design (a fresh install records the versions); the DDL not.
        assert fresh == stepped


async def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    """Proves a second migrate applies nothing and leaves the catalog unchanged."""
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrate(conn, "twice")
        before = await _catalog(conn, "twice")
        assert first and await migrate(conn, "twice") == []
        assert await _catalog(conn, "twice") == before
    finally:
        await conn.close()


@pytest.mark.parametrize("starters", [2, 4])
async def test_concurrent_migrate_on_a_fresh_database(database_url: str, starters: int) -> None:
    """Proves several daemons migrating a fresh install at once all succeed, and exactly
    one of them applies the migrations (the advisory lock serializes them)."""
    conns = [await asyncpg.connect(database_url) for _ in range(starters)]
    try:
        results = await asyncio.gather(*(migrate(c, "together") for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    applied = [r for r in results if r]
    assert len(applied) == 1 and applied[0] == all_versions("together")
