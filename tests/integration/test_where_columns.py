"""The `where` language against a real table: compiled SQL runs, columns come from the catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from jobd.errors import JobdError
from jobd.triggers.tables import TableCheckError, table_columns
from jobd.where import check_columns, compile_expression, parse_expression

_ROWS = [
    # id, status, processed, inserted_at offset, payload, deleted
    (1, "pending", None, timedelta(hours=2), '{"kind": "x"}', False),
    (2, "pending", True, timedelta(hours=2), '{"kind": "y"}', False),
    (3, "done", False, timedelta(minutes=5), '{"kind": "x"}', True),
    (4, "pending", False, timedelta(hours=3), "{}", False),
]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh database holding public.orders and a look-alike table."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            """
            CREATE TABLE public.orders (
                id int PRIMARY KEY, status text NOT NULL, processed boolean,
                inserted_at timestamptz NOT NULL, payload jsonb NOT NULL, deleted_at timestamptz
            );
            -- shares column names with orders, like jobd's own tables might
            CREATE TABLE public.jobs_like (id int, status text, processed boolean);
            INSERT INTO public.jobs_like VALUES (1, 'other', true), (2, 'other', true),
                (3, 'other', true), (4, 'other', true);
            """
        )
        for id_, status, processed, age, payload, deleted in _ROWS:
            await connection.execute(
                "INSERT INTO public.orders VALUES ($1, $2, $3, now() - $4::interval, $5::jsonb,"
                " CASE WHEN $6 THEN now() END)",
                id_,
                status,
                processed,
                age,
                payload,
                deleted,
            )
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("where", "expected_ids"),
    [
        ("processed IS NOT TRUE AND inserted_at < now() - interval '1 hour'", [1, 4]),
        ("status = 'pending'", [1, 2, 4]),
        ("payload->>'kind' = 'x'", [1, 3]),
        ("deleted_at IS NULL", [1, 2, 4]),
        ("processed IS NOT TRUE AND status = 'pending' AND id = ANY(ARRAY[1, 2, 3])", [1]),
    ],
)
async def test_compiled_expression_selects_matching_rows(
    conn: asyncpg.Connection, where: str, expected_ids: list[int]
) -> None:
    """Proves a compiled, alias-qualified expression runs in a join and picks exactly the
    matching rows, even though the joined table has columns of the same names."""
    compiled = compile_expression(parse_expression(where), alias="r")
    rows = await conn.fetch(
        "SELECT r.id FROM public.orders AS r JOIN public.jobs_like AS j ON j.id = r.id"
        f" WHERE ({compiled}) AND r.id > $1 ORDER BY r.id",
        0,
    )
    assert [row["id"] for row in rows] == expected_ids


async def test_unqualified_columns_would_be_captured(conn: asyncpg.Connection) -> None:
    """Proves why the alias matters: without it the same join is ambiguous in Postgres."""
    compiled = compile_expression(parse_expression("status = 'pending'"))
    with pytest.raises(asyncpg.AmbiguousColumnError):
        await conn.fetch(
            "SELECT r.id FROM public.orders AS r JOIN public.jobs_like AS j ON j.id = r.id"
            f" WHERE {compiled}"
        )


async def test_table_columns_and_suggestion(conn: asyncpg.Connection) -> None:
    """Proves the catalog gives the table's columns in order, with or without a schema,
    and an unknown column in a where expression is reported with a suggestion."""
    columns = await table_columns(conn, "public", "orders")
    assert columns == ["id", "status", "processed", "inserted_at", "payload", "deleted_at"]
    assert await table_columns(conn, None, "orders") == columns
    await conn.execute("ALTER TABLE public.orders DROP COLUMN deleted_at")
    assert "deleted_at" not in await table_columns(conn, None, "orders")

    expr = parse_expression("proccessed IS NOT TRUE AND status = 'pending'")
    problems = check_columns(expr, await table_columns(conn, "public", "orders"))
    assert problems == ['unknown column "proccessed"; did you mean "processed"?']


@pytest.mark.parametrize(("schema", "table"), [("public", "nope"), (None, "nope"), ("x", "orders")])
async def test_missing_table_is_a_clear_error(
    conn: asyncpg.Connection, schema: str | None, table: str
) -> None:
    """Proves a missing table (or schema) raises a JobdError that names it."""
    with pytest.raises(TableCheckError) as info:
        await table_columns(conn, schema, table)
    assert isinstance(info.value, JobdError)
    assert f"{table}" in str(info.value) and "does not exist" in str(info.value)
