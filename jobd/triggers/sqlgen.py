"""Fill the trigger query templates of `jobd/sql/queries/triggers.sql` for one trigger.

Only three kinds of text go into a template: identifiers through `jobd.sql.ident`, `where`
expressions compiled by `jobd.where`, and column type names from the catalog
(`format_type`). Everything else is a `$n` parameter; each builder returns the SQL and
says which parameters follow the template's fixed ones.

Paging (the scheduler's decision, see docs/semantics.md): when the scan order is the
primary key (the default read order, or a `sort` naming exactly the key columns in one
direction) the scan is cut into keyset pages (the first of `stream_batch_size` rows, later
ones growing, see jobd.triggers.scheduler), each page one short `INSERT ... SELECT`
walking the primary-key index. Any other order runs as ONE statement (the database sorts
the matching rows once): paging such an order would scan and sort the whole table again
for every page.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from jobd.model import Resource, SortKey, Trigger
from jobd.sql import queries
from jobd.sql.ident import quote_ident
from jobd.triggers.jobs import tenant_mode
from jobd.triggers.tables import ResolvedTable
from jobd.where import compile_expression, parse_expression

SCAN_FIXED_PARAMS = 12  # $1..$12 of trigger_scan_enqueue
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, parts: dict[str, str]) -> str:
    """Replace `{name}` for every name in `parts` (SQL's own braces are left alone).

    Comment lines go first: a placeholder inside a `--` comment would otherwise splice
    text there, and a compiled expression may hold a newline (in a string literal) that
    would end the comment and turn the rest of the literal into SQL."""
    code = "\n".join(line for line in template.splitlines() if not line.lstrip().startswith("--"))
    return _PLACEHOLDER.sub(lambda m: parts.get(m.group(1), m.group(0)), code)


def _col(name: str) -> str:
    return "t." + quote_ident(name)


@functools.lru_cache(maxsize=1024)
def _compiled_where(text: str) -> str:
    # Parsing with pglast takes milliseconds; the worker builds its re-read per job, so the
    # compiled text of each (immutable) expression is kept.
    return f"({compile_expression(parse_expression(text), alias='t')})"


def _where_sql(*texts: str | None) -> list[str]:
    return [_compiled_where(text) for text in texts if text]


@dataclass(frozen=True)
class ScanSql:
    """The scheduler's statements for one trigger and table (a tenant's, when schema)."""

    first: str  # the first page, or the whole scan
    next: str | None  # later keyset pages (None: one statement)
    pk_names: tuple[str, ...]  # parameters $13.. (JSON keys of args.pk)
    paged: bool
    tenant_param: bool  # a tenant-attribute value follows the pk names


def order_keys(resource: Resource, trigger: Trigger, pk: tuple[str, ...]) -> list[SortKey]:
    """The scan order: the trigger's sort, else the read's, then the primary key."""
    read = resource.read_named(trigger.read)
    keys = list(trigger.sort if trigger.sort is not None else read.sort)
    named = {key.column for key in keys}
    return keys + [SortKey(column) for column in pk if column not in named]


def pages_by_key(keys: list[SortKey], pk: tuple[str, ...]) -> bool:
    """True when the order is exactly the primary key, in one direction (see module docs)."""
    return [k.column for k in keys] == list(pk) and len({k.descending for k in keys}) == 1


def scan_sql(
    resource: Resource, trigger: Trigger, table: ResolvedTable, table_sql: str, schema: str
) -> ScanSql:
    pk = table.primary_key
    mode = tenant_mode(resource, trigger)
    keys = order_keys(resource, trigger, pk)
    paged = pages_by_key(keys, pk)
    aliases = {column: f"k{i}" for i, column in enumerate(pk)}
    columns = [f"{_col(column)} AS k{i}" for i, column in enumerate(pk)]
    for column in dict.fromkeys(k.column for k in keys):
        if column not in aliases:
            aliases[column] = f"o{len(aliases) - len(pk)}"
            columns.append(f"{_col(column)} AS {aliases[column]}")
    attribute = resource.multitenancy.attribute if resource.multitenancy else None
    if mode == "record" and attribute:
        columns.append(f"{_col(attribute)}::text AS tn")
    next_param = SCAN_FIXED_PARAMS + len(pk) + 1
    filters = _where_sql(trigger.where, resource.read_named(trigger.read).where)
    tenant_param = mode == "attribute" and attribute is not None
    if tenant_param and attribute:
        filters.append(f"{_col(attribute)} = ${next_param}::text::{table.types[attribute]}")
        next_param += 1
    parts = {
        "table": table_sql,
        "scan_columns": ", ".join(columns),
        "order": ", ".join(f"{_col(k.column)}{_dir(k)}" for k in keys),
        "scan_order": ", ".join(f"p.{aliases[k.column]}{_dir(k)}" for k in keys),
        "key_values": ", ".join(f"p.k{i}" for i in range(len(pk))),
        "pk_object": _pk_object(len(pk), SCAN_FIXED_PARAMS),
        "job_tenant": "coalesce(p.tn, $8::text)" if mode == "record" else "$8::text",
        "last": "",
    }
    template = queries(schema)["trigger_scan_enqueue"]
    first = fill(template, {**parts, "filter": " AND ".join(filters) or "true"})
    if not paged:
        return ScanSql(first, None, pk, False, tenant_param)
    descending = keys[0].descending
    reverse = ", ".join(f"p.k{i}{'' if descending else ' DESC'}" for i in range(len(pk)))
    parts["last"] = (
        f", (SELECT ROW({', '.join(f'p.k{i}' for i in range(len(pk)))}) FROM scan AS p "
        f"ORDER BY {reverse} LIMIT 1) AS last"
    )
    first = fill(template, {**parts, "filter": " AND ".join(filters) or "true"})
    position = ", ".join(f"${next_param + i}" for i in range(len(pk)))
    keyset = f"({', '.join(_col(c) for c in pk)}) {'<' if descending else '>'} ({position})"
    later = fill(template, {**parts, "filter": " AND ".join([*filters, keyset])})
    return ScanSql(first, later, pk, True, tenant_param)


def _dir(key: SortKey) -> str:
    return " DESC" if key.descending else ""


def _pk_object(n: int, fixed: int) -> str:
    """jsonb_build_object arguments: the key names are parameters after the fixed ones."""
    return ", ".join(f"${fixed + 1 + i}::text, p.k{i}" for i in range(n))


def _pk_join(pk: tuple[str, ...]) -> str:
    return " AND ".join(f"{_col(c)} = w.{quote_ident(c)}" for c in pk)


def reread_sql(
    resource: Resource, trigger: Trigger, table: ResolvedTable, table_sql: str, schema: str
) -> str:
    """The worker's re-read of its row: worker_read's columns, where applied, locked."""
    read = resource.read_named(trigger.worker_read)
    if read.columns is None:
        columns = "t.*"
    else:
        wanted = dict.fromkeys([*table.primary_key, *read.columns])
        columns = ", ".join(_col(c) for c in wanted)
    filters = _where_sql(trigger.where, read.where)
    return _row_by_key(table, table_sql, schema, columns, filters, trigger.lock_for_update)


def row_sql(table: ResolvedTable, table_sql: str, schema: str, *, lock: bool) -> str:
    """The row by primary key, unfiltered (for on_error, which runs whether or not the row
    still matches)."""
    return _row_by_key(table, table_sql, schema, "t.*", [], lock)


def _row_by_key(
    table: ResolvedTable, table_sql: str, schema: str, columns: str, filters: list[str], lock: bool
) -> str:
    parts = {
        "table": table_sql,
        "columns": columns,
        "pk_join": _pk_join(table.primary_key),
        "filter": " AND ".join(filters) or "true",
        "lock": "FOR UPDATE OF t" if lock else "",
    }
    return fill(queries(schema)["trigger_reread"], parts)
