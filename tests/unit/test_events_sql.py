"""The change-data trigger builders (jobd.triggers.events) and what an action is told of
its event: names within Postgres's limit, constants quoted as Postgres would, a dollar
quote that cannot be closed from inside, hashes that follow the definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from jobd.actions.base import ActionContext
from jobd.actions.http import envelope, template_values
from jobd.config import load_config_text
from jobd.sql.ident import quote_literal
from jobd.triggers.events import digest_of, event_function, event_trigger, object_name
from jobd.triggers.tables import ResolvedTable

BODY = """
version: 1
database: {url: "postgresql://unused"}
resources:
  orders:
    table: public.orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process:
        action: work
        where: "note <> '$jobd$ it''s'"
        events: [insert, update, delete]
        columns: [status]
        action_input: {"quote": "it's \\\\ here"}
"""
SPEC = load_config_text(BODY, "t.yaml", env={})
ORDERS = SPEC.resources["orders"]
TRIGGER = ORDERS.triggers["process"]
TABLE = ResolvedTable("orders", "public", "orders", ("id",), ("id", "status", "note"))


def test_quote_literal_is_postgres_quote_literal() -> None:
    """Quotes doubled; a backslash makes an E'' string with backslashes doubled."""
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\b") == "E'a\\\\b'"


def test_object_names_fit_and_differ_per_schema_worker_and_event() -> None:
    """Names stay within 63 bytes however long the worker name, and differ by jobd
    schema, worker and event."""
    long = "x" * 200
    assert len(object_name("jobd", long, "delete")) <= 63
    names = {
        object_name(s, w, e)
        for s in ("jobd", "other")
        for w in ("orders.process", "orders-process")
        for e in ("insert", "delete")
    }
    assert len(names) == 8


def test_the_function_body_cannot_be_closed_from_inside() -> None:
    """A `where` holding `$jobd$` moves the function's dollar quote to another tag; the
    job's constants are quoted literals."""
    fn = event_function(ORDERS, TRIGGER, "insert", TABLE, "jobd")
    assert "AS $jobd1$" in fn.sql and fn.sql.rstrip().endswith("$jobd1$")
    assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in fn.sql
    assert 'E\'{"actor":null,"input":{"quote":"it\'\'s \\\\\\\\ here"}' in fn.sql


def test_update_with_columns_compares_old_and_new_rows() -> None:
    """The update function keeps rows whose listed columns changed (binary image
    comparison, any type); the insert function has no such filter; delete reads the old
    rows and keeps their image."""
    update = event_function(ORDERS, TRIGGER, "update", TABLE, "jobd").sql
    assert 'record_image_eq(ROW(o."status"), ROW(t."status"))' in update
    assert "record_image_eq" not in event_function(ORDERS, TRIGGER, "insert", TABLE, "jobd").sql
    delete = event_function(ORDERS, TRIGGER, "delete", TABLE, "jobd").sql
    assert "FROM jobd_old_rows AS t" in delete and "'old', p.old" in delete


def test_hashes_follow_the_definition_not_the_table_name() -> None:
    """A changed `where` changes the function's hash; the trigger's hash does not depend
    on how the table is spelled; the COMMENT carries the hash."""
    fn = event_function(ORDERS, TRIGGER, "insert", TABLE, "jobd")
    other = replace(TRIGGER, where="status = 'x'")
    assert event_function(ORDERS, other, "insert", TABLE, "jobd").digest != fn.digest
    a, b = event_trigger(fn, '"orders"', "jobd"), event_trigger(fn, '"public"."orders"', "jobd")
    assert a.digest == b.digest and a.sql != b.sql
    assert digest_of(a.comment_sql.split(" IS ", 1)[1].strip("'")) == a.digest


def context(**values: Any) -> ActionContext:
    """An action context of a job (no connection: the envelope needs none)."""
    job = SimpleNamespace(
        id=1, attempt=1, max_attempts=1, queue="q", priority=2, inserted_at=datetime.now(UTC)
    )
    return ActionContext(job=job, resource="orders", conn=None, log=None, **values)  # type: ignore[arg-type]


def test_the_event_reaches_the_envelope_and_templates() -> None:
    """An event's job tells its kind in the HTTP envelope and `{event}`; a scan's job
    has no `event` key and `{event}` renders empty."""
    ctx = context(trigger="process", event="delete", record={"id": 1})
    assert envelope(ctx, "work")["event"] == "delete"
    assert template_values(ctx, "work")["event"] == "delete"
    scanned = context(trigger="process")
    assert "event" not in envelope(scanned, "work")
    assert template_values(scanned, "work")["event"] == ""
