"""The `update` action: a declarative UPDATE of the job's own row (SPEC 1.5).

    mark_processed:
      update: {set: {processed: true, processed_at: {sql: "now()"}, ref: {response: "data.id"}}}

Values: a YAML literal, `{input: key}` (the job's input), `{error: message|kind|status|
attempt}` (the final error, in on_error), `{response: "a.b.0"}` (a path into the main
action's result: for HTTP actions into the JSON body) are *bound*; `{sql: "..."}` is a
checked expression (the `where` language, no boolean required) embedded in the statement.

Decision on types: every bound value travels in one JSON object ($1) that Postgres turns
into a row of the table's own type with `jsonb_populate_record`, so each value is
converted by its column's type (`"2024-01-01"` into a timestamptz, `true` into a boolean,
a mapping into jsonb, a list into an array or jsonb, a string into an enum). asyncpg
therefore never has to guess Python types, and a value like `'); DROP TABLE x; --` is
data, never SQL. The primary key is matched the same way ($2), so keys of any type work.
A missing input/response/error value is NULL.

The statement runs on `ctx.conn`, inside the job's transaction: it commits with the job's
completion or not at all. Updating no row (the row was deleted meanwhile; possible only
without `lock_for_update`) raises `RowGone`, a failed attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from jobd import model
from jobd.actions.base import ActionContext
from jobd.common.jsontext import json_text
from jobd.errors import JobdError
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.sql.ident import quote_ident, quote_qualified
from jobd.where import compile_expression, parse_expression

_ROW, _SET, _KEY = "jobd_row", "jobd_set", "jobd_key"


class RowGone(JobdError):
    """The update matched no row: the job's row no longer exists."""


class UpdateAction:
    """Runs one `update` action; built once per daemon, the SQL cached per table."""

    def __init__(self, name: str, resource: model.Resource, spec: model.UpdateAction) -> None:
        self.name = name
        self.resource = resource
        self.values = dict(spec.set)
        # Parse `{sql}` values now, so a bad expression fails at start (WhereError).
        self.expressions = {
            column: compile_expression(parse_expression(v.sql, boolean=False), alias=_ROW)
            for column, v in self.values.items()
            if isinstance(v, model.SqlValue)
        }
        self._default_table = quote_qualified(
            *(p for p in (resource.table_schema, resource.table_name) if p)
        )

    async def run(self, ctx: ActionContext) -> None:
        sql = self._statement(ctx)
        status = await ctx.conn.execute(
            sql, json_text(self._bound(ctx)), json_text(dict(ctx.primary_key or {}))
        )
        if status.rsplit(" ", 1)[-1] == "0":
            raise self.row_gone()

    async def run_many(self, conn: Connection, contexts: Sequence[ActionContext]) -> set[int]:
        """The action for the rows of many jobs of one table in ONE statement on `conn`
        (a trigger batch's on_success); the positions (0-based) of the contexts whose row
        was updated. All contexts must have the same table and key columns."""
        sql = self._statement(contexts[0], many=True)
        pairs = [[self._bound(ctx), dict(ctx.primary_key or {})] for ctx in contexts]
        return {int(row[0]) - 1 for row in await conn.fetch(sql, json_text(pairs))}

    def row_gone(self) -> RowGone:
        return RowGone(
            f"update action {self.name!r} found no row to update in resource "
            f"{self.resource.name!r} (deleted meanwhile?)"
        )

    def _statement(self, ctx: ActionContext, *, many: bool = False) -> str:
        if not ctx.primary_key:
            raise JobdError(f"update action {self.name!r} needs the job's primary key")
        table = ctx.table_sql or self._default_table
        columns, expressions = tuple(self.values), tuple(self.expressions.items())
        return update_statement(table, columns, expressions, tuple(ctx.primary_key), many=many)

    def _bound(self, ctx: ActionContext) -> dict[str, Any]:
        return {
            c: resolve_value(v, ctx) for c, v in self.values.items() if c not in self.expressions
        }


@cache
def update_statement(
    table: str,
    columns: tuple[str, ...],
    expressions: tuple[tuple[str, str], ...],
    key_columns: tuple[str, ...],
    *,
    many: bool = False,
) -> str:
    """The UPDATE for one table (identifiers quoted here; expressions already compiled):
    of one row, or with `many` of a JSON array of rows (`action_update_many`)."""
    compiled = dict(expressions)
    assignments = ", ".join(
        f"{quote_ident(c)} = {compiled.get(c) or f'{_SET}.{quote_ident(c)}'}" for c in columns
    )
    key = " AND ".join(f"{_ROW}.{quote_ident(c)} = {_KEY}.{quote_ident(c)}" for c in key_columns)
    template = queries()["action_update_many" if many else "action_update"]
    return (
        template.replace("{assignments}", assignments)
        .replace("{key}", key)
        .replace("{table}", table)
    )


def resolve_value(value: model.SetValue, ctx: ActionContext) -> Any:
    """The Python value a bound `set:` entry takes for this attempt."""
    match value:
        case model.LiteralValue(literal):
            return literal
        case model.InputValue(key):
            return (ctx.input or {}).get(key)
        case model.ErrorValue(field):
            return (ctx.error or {}).get(field)
        case model.ResponseValue(path):
            return response_path(ctx.response, path)
    raise TypeError(f"not a bound value: {value!r}")


def response_path(response: Any, path: Sequence[str]) -> Any:
    """Walk `path` into an action result; for an HTTP result, into its JSON body.

    A number indexes a list; a missing step gives None.
    """
    node = response.get("body") if is_http_result(response) else response
    for step in path:
        if isinstance(node, Mapping):
            node = node.get(step)
        elif isinstance(node, list | tuple) and step.lstrip("-").isdigit():
            index = int(step)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            return None
    return node


class HttpResult(dict[str, Any]):
    """The result of an HTTP action: `status`, `headers`, `body` (JSON or None),
    `body_truncated`. A plain dict to JSON and to the job's record."""


def is_http_result(value: Any) -> bool:
    return isinstance(value, HttpResult)
