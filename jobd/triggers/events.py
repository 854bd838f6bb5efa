"""Change-data triggers: the database objects of a trigger's `events:` (SPEC 5).

    fn = event_function(resource, trigger, "insert", table, "jobd")
    tg = event_trigger(fn, '"public"."orders"', "jobd")
    fn.sql, fn.comment_sql, tg.sql, tg.comment_sql      # what jobd.triggers.eventsync runs

For each event of a trigger, one function in jobd's schema and one statement-level AFTER
trigger on the resource's table (on each tenant's table with schema tenancy), both named
`object_name(...)`: `jobd_<worker>_<event>_<hash>`. The function enqueues the rows of the
statement that fired it, from its transition table, with ONE `INSERT ... SELECT` in the
writing transaction: a rollback enqueues nothing, a 100k-row INSERT is one call. Past
`EXPAND_MIN_ROWS` matching rows it enqueues one expansion job with their keys instead,
which the daemon turns into the same jobs (jobd.triggers.expand).

The jobs are the scan's (jobd.triggers.jobs: worker, queue, priority, attempts, hold,
args), with `event` added to args; the `where` (and the scan read's `where`) is applied to
the rows. Insert and update jobs have the row's unique key, so `ON CONFLICT` gives a row
with a job no second one, exactly as the scan; the worker re-reads their row. A delete job
carries the old row (`args.old`) and has a key of its own (`<worker>:<tenant>:delete:
[pk]`): a row deleted while its insert job waits gets its delete job too (the insert job
then finds no row and is cancelled). `columns` (update only): a row counts when no old
version of it (same key) had the same values in those columns; values compare by their
binary image (`record_image_eq`, the `*=` of records), so any type works, and a changed
key counts as a change.

Tenancy: with attribute tenancy (and `use_tenant_from_record`) the job's tenant is the
row's attribute; with schema tenancy it is the schema of the table that fired
(`TG_TABLE_SCHEMA`), which is also in the key, as the scan writes it.

Each object's COMMENT ends with `definition <hash>` of its DDL; jobd.triggers.eventsync
compares it to tell a current object from an outdated one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from jobd.common.jsontext import json_text
from jobd.engine.insert import INSERT_CHANNEL, channel
from jobd.model import EventKind, Resource, Trigger
from jobd.sql import queries
from jobd.sql.ident import quote_ident, quote_literal
from jobd.triggers.jobs import (
    DELETE_KEY,
    EXPAND_MAX_ATTEMPTS,
    common_args,
    expand_name,
    tenant_mode,
    worker_hold,
)
from jobd.triggers.sqlgen import fill
from jobd.triggers.tables import ResolvedTable
from jobd.where import compile_expression, parse_expression

# The transition tables each event's trigger declares (the old rows of an update only
# with `columns`, which compare them: Postgres keeps a declared table whether or not it
# is read).
NEW_ROWS, OLD_ROWS = "jobd_new_rows", "jobd_old_rows"
TRANSITIONS: dict[str, str] = {
    "insert": f"NEW TABLE AS {NEW_ROWS}",
    "update": f"NEW TABLE AS {NEW_ROWS}",
    "update_columns": f"OLD TABLE AS {OLD_ROWS} NEW TABLE AS {NEW_ROWS}",
    "delete": f"OLD TABLE AS {OLD_ROWS}",
}
# A statement with more matching rows than this enqueues one expansion job carrying their
# keys (jobd.triggers.expand) instead of a job per row: a bulk write then pays for one job
# row, the daemon for the rest (bench/events.py: 100,000 rows at about 1.3x the write
# without the trigger, 7-8x with a job each).
EXPAND_MIN_ROWS = 1000
_DIGEST = re.compile(r"definition ([0-9a-f]{16})$")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class EventFunction:
    """The enqueueing function of one (trigger, event), in jobd's schema."""

    name: str  # unquoted (its schema is jobd's)
    worker: str
    event: EventKind
    sql: str  # CREATE OR REPLACE FUNCTION ...
    digest: str
    comment_sql: str
    transition: str  # the REFERENCING clause its trigger needs


@dataclass(frozen=True)
class EventTrigger:
    """The trigger of one (trigger, event) on one table."""

    name: str
    table_sql: str  # quoted
    function: EventFunction
    sql: str  # CREATE TRIGGER ...
    digest: str
    comment_sql: str


def object_name(schema: str, worker_name: str, event: str) -> str:
    """`jobd_<worker>_<event>_<hash>`: readable, at most 63 bytes, and distinct for every
    (jobd schema, worker, event), so two jobd installs never share one."""
    slug = _SLUG.sub("_", worker_name.lower()).strip("_")[:36]
    digest = hashlib.sha256(f"{schema}\0{worker_name}".encode()).hexdigest()[:8]
    return f"jobd_{slug}_{event}_{digest}"


def digest_of(comment: str | None) -> str | None:
    """The definition hash a COMMENT of jobd's ends with (None: none there)."""
    match = _DIGEST.search(comment or "")
    return match.group(1) if match else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _comment(worker: str, event: str, digest: str) -> str:
    return quote_literal(f"jobd: {event} events of {worker}; definition {digest}")


def _filter(resource: Resource, trigger: Trigger, event: str, pk: tuple[str, ...]) -> str:
    texts = [t for t in (trigger.where, resource.read_named(trigger.read).where) if t]
    parts = [f"({compile_expression(parse_expression(t), alias='t')})" for t in texts]
    if event == "update" and trigger.columns:
        same_key = " AND ".join(f"o.{quote_ident(c)} = t.{quote_ident(c)}" for c in pk)
        old = ", ".join(f"o.{quote_ident(c)}" for c in trigger.columns)
        new = ", ".join(f"t.{quote_ident(c)}" for c in trigger.columns)
        parts.append(
            f"NOT EXISTS (SELECT 1 FROM {OLD_ROWS} AS o WHERE {same_key} "
            f"AND pg_catalog.record_image_eq(ROW({old}), ROW({new})))"
        )
    return " AND ".join(parts) or "true"


def _text_array(values: tuple[str, ...]) -> str:
    """A text[] literal of `values` (the trigger's tags), each quoted as a literal."""
    return f"ARRAY[{', '.join(quote_literal(v) for v in values)}]" if values else "'{}'"


def _dollar_tag(body: str) -> str:
    """A dollar-quote tag that does not occur in the function's body."""
    n = 0
    while f"$jobd{n or ''}$" in body:
        n += 1
    return f"$jobd{n or ''}$"


def event_function(
    resource: Resource, trigger: Trigger, event: EventKind, table: ResolvedTable, schema: str
) -> EventFunction:
    """The function enqueueing `trigger`'s jobs for `event` (see module docs)."""
    pk = table.primary_key
    mode = tenant_mode(resource, trigger)
    columns = [f"t.{quote_ident(c)} AS k{i}" for i, c in enumerate(pk)]
    attribute = resource.multitenancy.attribute if resource.multitenancy else None
    if mode in ("attribute", "record") and attribute:
        columns.append(f"t.{quote_ident(attribute)}::text AS tn")
        job_tenant = "p.tn"
    else:
        job_tenant = "TG_TABLE_SCHEMA::text" if mode == "schema" else "NULL::text"
    worker = trigger.worker_name
    tenant = " || TG_TABLE_SCHEMA || " if mode == "schema" else " || "
    key = f"{quote_literal(worker + ':')}{tenant}{quote_literal(':')}"
    if event == "delete":
        columns.append("pg_catalog.to_jsonb(t) AS old")
        key = f"{key} || {quote_literal(DELETE_KEY)}"
    # Keys as array literals (text): the cheapest to collect and store, exact for any type.
    aggregates = [f"'k{i}', array_agg(t.{quote_ident(c)})::text" for i, c in enumerate(pk)]
    if job_tenant == "p.tn" and attribute:
        aggregates.append(f"'tn', array_agg(t.{quote_ident(attribute)}::text)::text")
    if event == "delete":
        aggregates.append("'old', to_jsonb(array_agg(pg_catalog.to_jsonb(t)))")
    name = object_name(schema, worker, event)
    qualified = _qualified(schema, name)
    parts = {
        "function": qualified,
        "row_columns": ", ".join(columns),
        "source": OLD_ROWS if event == "delete" else NEW_ROWS,
        "filter": _filter(resource, trigger, event, pk),
        "key_prefix": f"({key})",
        "key_values": ", ".join(f"p.k{i}" for i in range(len(pk))),
        "queue": quote_literal(trigger.queue),
        "worker": quote_literal(worker),
        "args": quote_literal(json_text(common_args(trigger, None))),
        "pk_object": ", ".join(f"{quote_literal(c)}::text, p.k{i}" for i, c in enumerate(pk)),
        "job_tenant": job_tenant,
        "event": quote_literal(event),
        "old": ", 'old', p.old" if event == "delete" else "",
        "priority": str(int(trigger.priority)),
        "max_attempts": str(int(trigger.max_attempts)),
        "uniq_hold": quote_literal(json_text(worker_hold(trigger))),
        "tags": _text_array(trigger.tags),
        "channel": quote_literal(channel(schema, INSERT_CHANNEL)),
        "expand_min": str(EXPAND_MIN_ROWS),
        "expand_queue": quote_literal(trigger.scheduler_queue),
        "expand_worker": quote_literal(expand_name(trigger)),
        "expand_tenant": "TG_TABLE_SCHEMA::text" if mode == "schema" else "NULL::text",
        "expand_attempts": str(EXPAND_MAX_ATTEMPTS),
        "aggregates": ", ".join(aggregates),
    }
    template = queries(schema)["event_function"]
    body = fill(template, {**parts, "tag": ""})
    sql = fill(template, {**parts, "tag": _dollar_tag(body)})
    digest = _digest(sql)
    return EventFunction(
        name=name,
        worker=worker,
        event=event,
        sql=sql,
        digest=digest,
        comment_sql=_sql(
            schema,
            "event_comment_function",
            function=qualified,
            comment=_comment(worker, event, digest),
        ),
        transition=TRANSITIONS[
            "update_columns" if event == "update" and trigger.columns else event
        ],
    )


def event_trigger(function: EventFunction, table_sql: str, schema: str) -> EventTrigger:
    """The trigger calling `function` on the table `table_sql` (quoted)."""
    name, event = function.name, function.event
    parts = {
        "trigger": quote_ident(name),
        "event": event.upper(),
        "table": table_sql,
        "transition": function.transition,
        "function": _qualified(schema, name),
    }
    sql = fill(queries(schema)["event_trigger"], parts)
    # The table is left out of the hash: one definition whatever the table is called.
    digest = _digest(fill(queries(schema)["event_trigger"], {**parts, "table": ""}))
    comment = _comment(function.worker, event, digest)
    return EventTrigger(
        name=name,
        table_sql=table_sql,
        function=function,
        sql=sql,
        digest=digest,
        comment_sql=_sql(
            schema,
            "event_comment_trigger",
            trigger=parts["trigger"],
            table=table_sql,
            comment=comment,
        ),
    )


def drop_trigger_sql(schema: str, name: str, table_sql: str) -> str:
    return _sql(schema, "event_drop_trigger", trigger=quote_ident(name), table=table_sql)


def drop_function_sql(schema: str, name: str) -> str:
    return _sql(schema, "event_drop_function", function=_qualified(schema, name))


def _qualified(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def _sql(schema: str, query: str, **parts: str) -> str:
    return fill(queries(schema)[query], parts)
