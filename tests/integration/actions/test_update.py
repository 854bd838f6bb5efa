"""The update action against real Postgres: every kind of value, types, safety, transactions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobd import model
from jobd.actions.build import ActionServices, build_action
from jobd.actions.update import HttpResult, RowGone
from jobd.where import WhereError
from tests.integration.actions.conftest import make_ctx, make_resource

TABLE = """
CREATE TYPE order_status AS ENUM ('pending', 'done', 'failed');
CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    status order_status NOT NULL DEFAULT 'pending',
    note text,
    processed boolean,
    processed_at timestamptz,
    attempts int,
    remote_ref text,
    payload jsonb,
    tags text[]
);
INSERT INTO public.orders (id) VALUES (1), (2);
"""


def update(**values: model.SetValue) -> model.Action:
    return model.Action("mark", "update", update=model.UpdateAction(values))


async def run_update(conn: Any, action: model.Action, **ctx: Any) -> Any:
    runnable = build_action(make_resource({"mark": action}), action, ActionServices())
    ctx.setdefault("primary_key", {"id": 1})
    ctx.setdefault("table_sql", '"public"."orders"')
    return await runnable.run(make_ctx(conn, **ctx))


async def row(conn: Any, pk: int = 1) -> dict[str, Any]:
    return dict(await conn.fetchrow("SELECT * FROM public.orders WHERE id = $1", pk))


async def test_literals_take_their_column_types(conn: Any) -> None:
    """YAML literals are bound and converted by each column's own type (enum, bool, ts,
    jsonb, array), and only the job's row changes."""
    await conn.execute(TABLE)
    action = update(
        status=model.LiteralValue("done"),
        processed=model.LiteralValue(True),
        processed_at=model.LiteralValue("2024-05-01T10:00:00Z"),
        payload=model.LiteralValue(model.freeze_json({"a": [1, 2]})),
        tags=model.LiteralValue(("x", "y")),
        attempts=model.LiteralValue(3),
    )
    assert await run_update(conn, action) is None
    got = await row(conn)
    assert got["status"] == "done" and got["processed"] is True and got["attempts"] == 3
    assert got["processed_at"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert got["payload"] == {"a": [1, 2]} and got["tags"] == ["x", "y"]
    assert (await row(conn, 2))["status"] == "pending"


async def test_injection_attempt_is_stored_as_text(conn: Any) -> None:
    """A literal that looks like SQL is bound as data: it lands as text, nothing else runs."""
    await conn.execute(TABLE)
    evil = "'); DROP TABLE public.orders; --"
    await run_update(conn, update(note=model.LiteralValue(evil)))
    assert (await row(conn))["note"] == evil
    assert await conn.fetchval("SELECT count(*) FROM public.orders") == 2


async def test_sql_input_error_response_values(conn: Any) -> None:
    """{sql}, {input}, {error} and {response} values resolve from the context."""
    await conn.execute(TABLE)
    action = update(
        processed_at=model.SqlValue("now()"),
        attempts=model.SqlValue("coalesce(attempts, 0) + 1"),
        note=model.InputValue("reason"),
        status=model.ErrorValue("kind"),
        remote_ref=model.ResponseValue(("data", "items", "0", "id")),
    )
    response = {"data": {"items": [{"id": "R-9"}]}}
    await run_update(
        conn,
        action,
        input={"reason": "because"},
        response=response,
        error={"message": "boom", "kind": "failed", "status": 503, "attempt": 5},
    )
    got = await row(conn)
    assert got["processed_at"] is not None and got["attempts"] == 1
    assert got["note"] == "because" and got["status"] == "failed"
    assert got["remote_ref"] == "R-9"


async def test_error_fields_and_http_response_body(conn: Any) -> None:
    """{error: message|attempt} fill text/int columns; {response} on an HTTP result walks
    its JSON body; missing values become NULL."""
    await conn.execute(TABLE)
    action = update(
        note=model.ErrorValue("message"),
        attempts=model.ErrorValue("attempt"),
        remote_ref=model.ResponseValue(("id",)),
        payload=model.ResponseValue(("missing", "path")),
    )
    result = HttpResult(status=200, headers={}, body={"id": 77}, body_truncated=False)
    await run_update(conn, action, response=result, error={"message": "HTTP 500", "attempt": 4})
    got = await row(conn)
    assert (got["note"], got["attempts"], got["remote_ref"]) == ("HTTP 500", 4, "77")
    assert got["payload"] is None


async def test_writes_roll_back_with_the_transaction(conn: Any) -> None:
    """The update runs on ctx.conn inside the caller's transaction: a rollback undoes it."""
    await conn.execute(TABLE)
    tx = conn.transaction()
    await tx.start()
    await run_update(conn, update(note=model.LiteralValue("temp")))
    assert (await row(conn))["note"] == "temp"
    await tx.rollback()
    assert (await row(conn))["note"] is None


async def test_missing_row_and_composite_key_and_schema_tenant(conn: Any) -> None:
    """A vanished row raises RowGone; composite keys and a tenant schema table work."""
    await conn.execute(
        "CREATE SCHEMA acme; CREATE TABLE acme.lines (o int, n text, qty int, "
        "PRIMARY KEY (o, n)); INSERT INTO acme.lines VALUES (1, 'a', 0), (1, 'b', 0)"
    )
    action = update(qty=model.LiteralValue(5))
    await run_update(conn, action, primary_key={"o": 1, "n": "b"}, table_sql='"acme"."lines"')
    rows = await conn.fetch("SELECT n, qty FROM acme.lines ORDER BY n")
    assert [tuple(r) for r in rows] == [("a", 0), ("b", 5)]
    with pytest.raises(RowGone):
        await run_update(conn, action, primary_key={"o": 9, "n": "z"}, table_sql='"acme"."lines"')


def test_bad_sql_value_fails_at_build() -> None:
    """A `{sql}` value outside the where language is rejected when the action is built."""
    action = update(note=model.SqlValue("(SELECT 1)"))
    with pytest.raises(WhereError):
        build_action(make_resource({"mark": action}), action, ActionServices())


def test_values_bound_as_json() -> None:
    """Sanity: the JSON text of bound values keeps strings as strings (no SQL text)."""
    from jobd.actions.update import json_text

    assert json.loads(json_text({"n": "'); --"})) == {"n": "'); --"}
