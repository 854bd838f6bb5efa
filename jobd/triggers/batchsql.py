"""The batch re-read of a trigger's rows (`batch_read` of jobd/sql/queries/batch.sql),
filled for one trigger and table like jobd.triggers.sqlgen fills the scan: identifiers
through jobd.sql.ident, `where` expressions compiled by jobd.where, everything else a
parameter."""

from __future__ import annotations

import functools

from jobd.model import Resource, Trigger
from jobd.sql import queries
from jobd.sql.ident import quote_ident
from jobd.triggers.sqlgen import fill
from jobd.triggers.tables import ResolvedTable
from jobd.where import compile_expression, parse_expression

FENCED, JOB_ID = "jobd_fenced", "jobd_job_id"  # the statement's own columns


@functools.lru_cache(maxsize=256)
def _filter(texts: tuple[str, ...]) -> str:
    compiled = [f"({compile_expression(parse_expression(t), alias='t')})" for t in texts]
    return " AND ".join(compiled) or "true"


def batch_read_sql(
    resource: Resource,
    trigger: Trigger,
    table: ResolvedTable,
    table_sql: str,
    schema: str,
    *,
    lock_jobs: bool,
    lock_rows: bool,
    deleted: bool = False,
) -> str:
    """The batch's fence and re-read: $1 job ids, $2 attempts, $3 node id. Columns: the
    worker_read's (and the key), `jobd_fenced` (the job id, for every fenced job) and
    `jobd_job_id` (NULL when the row no longer matches). Locks: the jobs' rows with
    `lock_jobs`, the table's rows with `lock_rows` (both only inside a transaction).
    `deleted`: a batch of delete events' jobs, whose rows are the old images they carry
    (`event_batch_read`: fenced alike, nothing re-read, nothing to lock)."""
    read = resource.read_named(trigger.worker_read)
    if read.columns is None:
        columns = "t.*"
    else:
        wanted = dict.fromkeys([*table.primary_key, *read.columns])
        columns = ", ".join(f"t.{quote_ident(c)}" for c in wanted)
    if deleted:
        parts = {
            "table": table_sql,
            "columns": columns,
            "job_lock": "FOR UPDATE OF j" if lock_jobs else "",
        }
        return fill(queries(schema)["event_batch_read"], parts)
    pk_join = " AND ".join(f"t.{quote_ident(c)} = w.{quote_ident(c)}" for c in table.primary_key)
    parts = {
        "table": table_sql,
        "columns": columns,
        "pk_join": pk_join,
        "filter": _filter(tuple(t for t in (trigger.where, read.where) if t)),
        "job_lock": "FOR UPDATE OF j" if lock_jobs else "",
        "row_lock": "FOR UPDATE OF t" if lock_rows else "",
    }
    return fill(queries(schema)["batch_read"], parts)
