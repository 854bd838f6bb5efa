"""Tenant listing (SPEC 1.7): `list_tenants` as a list, `{sql: ...}` or `{python: ...}`.

Resolved each time a scheduler runs (and once at start, to check a `schema` tenant's
table). Names that will become SQL text (schema-strategy tenants are schema names) must be
plain identifiers (`jobd.sql.ident.is_identifier`); a bad name is logged as
`tenants.invalid` and skipped, never quoted into a query. Attribute-strategy tenants are
only ever bind parameters, so any non-empty string (an org id such as "42") is accepted.
"""

from __future__ import annotations

from typing import Any

import structlog

from jobd.common.entrypoints import EntrypointError, call_maybe_async, load_callable
from jobd.errors import JobdError
from jobd.model import TenantSource
from jobd.sql.db import read_only
from jobd.sql.driver import Connection
from jobd.sql.ident import is_identifier

log = structlog.get_logger("jobd.triggers")

MAX_TENANT_CHARS = 256


class TenantSourceError(JobdError):
    """A `list_tenants` source could not be evaluated (bad entrypoint, failing query)."""


async def _raw_names(source: TenantSource, conn: Connection) -> list[Any]:
    if source.kind == "list":
        return list(source.names)
    if source.kind == "sql":
        if not source.sql:
            raise TenantSourceError("list_tenants: empty sql")
        sql = source.sql
        try:  # read-only, as `jobd check` requires: a listing never writes
            rows = await read_only(conn, lambda: conn.fetch(sql))
        except Exception as exc:  # the user's query: any driver error is theirs to fix
            raise TenantSourceError(f"list_tenants sql failed: {exc}") from exc
        return [row[0] for row in rows]
    try:
        function = load_callable(source.entrypoint or "", context=" (list_tenants)")
    except EntrypointError as exc:
        raise TenantSourceError(str(exc)) from exc
    result = await call_maybe_async(function)
    if isinstance(result, str) or not hasattr(result, "__iter__"):
        raise TenantSourceError(
            f"list_tenants: {source.entrypoint!r} must return a list of names, "
            f"got {type(result).__name__}"
        )
    return list(result)


def tenant_ok(name: object, *, identifier: bool) -> bool:
    """True when `name` may be used as a tenant (see the module docs)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return False
    return is_identifier(name) if identifier else len(name) <= MAX_TENANT_CHARS


async def list_tenants(
    source: TenantSource | None, conn: Connection, *, identifiers: bool = True
) -> list[str]:
    """The tenant names of `source` (None: no tenants), in order, without repeats.

    `identifiers=True` (schema strategy) keeps only plain identifiers; otherwise any
    non-empty string of at most 256 characters. Rejected names are logged and skipped.
    """
    if source is None:
        return []
    names: list[str] = []
    for raw in await _raw_names(source, conn):
        name = str(raw) if isinstance(raw, int) and not identifiers else raw
        if not tenant_ok(name, identifier=identifiers):
            log.warning("tenants.invalid", tenant=repr(raw)[:100], source=source.kind)
            continue
        if name not in names:
            names.append(name)
    return names
