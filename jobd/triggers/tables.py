"""Resolve each resource's table against the real database, and check the configuration's
column names against it (`jobd check --db` and daemon start).

    tables = await resolve_resources(conn, spec)     # raises TableCheckError (exit 2)
    tables["orders"].sql()                            # '"public"."orders"'
    tables["orders"].sql("acme")                      # schema strategy: '"acme"."orders"'

What is checked, every problem reported at once (with "did you mean"): the table exists;
its primary key (from `primary_key:` or the catalog's primary-key index, composite keys in
index order); the tenant attribute; every `where` (triggers and reads), `sort` column, read
`columns` entry, update action `set` column and `{sql: ...}` value. Each problem is a
`Finding` at the configuration's key path, so `jobd check --db` can put it at its
file:line:column (`jobd.triggers.check` adds what only preparing the statements shows).

`multitenancy: {strategy: schema}`: the table is `"<tenant>"."<table>"`, so it is resolved
against the first tenant's schema, and a table without a tenant is an error that says how
to give one (`tenant_needed`). When no tenant is known yet (an empty list, or a query
that returns nothing), the column checks are skipped and the table is resolved lazily, per
tenant, the first time a job needs it (`resolve_table`); a missing table then fails that
tenant's scheduler run or job, not the daemon's start. A `list_tenants.sql` query runs in
a READ ONLY transaction (`read_only`): a query that writes fails instead of writing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from jobd.config.yamlload import KeyPath, format_path
from jobd.errors import JobdError, UsageError
from jobd.model import Resource, SortKey, Spec, SqlValue
from jobd.sql import queries
from jobd.sql.db import read_only as read_only  # re-exported for jobd.triggers.check
from jobd.sql.driver import Connection, Record
from jobd.sql.ident import is_identifier, quote_ident, quote_qualified
from jobd.triggers.tenants import TenantSourceError, list_tenants
from jobd.where import Expression, WhereError, check_columns, parse_expression


@dataclass(frozen=True)
class Finding:
    """One way the configuration does not fit the database, at its key path (`at_key`:
    point at the key itself rather than its value)."""

    path: KeyPath
    message: str
    at_key: bool = False

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}"


class TableCheckError(JobdError):
    """The configuration does not fit the database; `.problems` lists every finding."""

    exit_code = 2

    def __init__(self, problems: Sequence[Finding]) -> None:
        self.problems = list(problems)
        listed = "\n  ".join(str(p) for p in problems)
        super().__init__(f"the configuration does not match the database:\n  {listed}")


def tenant_needed(resource: str) -> str:
    """What to say when a schema-tenancy resource is used without a tenant."""
    return (
        f"resource {resource!r} keeps a table in each tenant's schema (multitenancy "
        "strategy 'schema'), so a tenant is needed: give --tenant T on the command line, "
        '"tenant": "T" in the admin API, or the tenant argument of jobd.run_trigger in SQL'
    )


def require_tenant(resource: Resource, tenant: str | None) -> None:
    """UsageError (saying how to give one) when `resource` needs a tenant and has none."""
    tenancy = resource.multitenancy
    if tenant is None and tenancy is not None and tenancy.strategy == "schema":
        raise UsageError(tenant_needed(resource.name))


@dataclass(frozen=True)
class ResolvedTable:
    """A resource's table as the database has it."""

    resource: str
    schema: str | None  # as configured; None = found via the search_path
    name: str
    primary_key: tuple[str, ...]
    columns: tuple[str, ...]
    types: Mapping[str, str] = field(default_factory=dict)  # column -> SQL type name
    tenant_schema: bool = False  # multitenancy strategy "schema"
    checked: bool = True  # False: schema strategy with no tenant known at start
    tenant: str | None = None  # schema strategy: the tenant whose table this is

    def sql(self, tenant: str | None = None) -> str:
        """The quoted table name; with the schema strategy, in `tenant`'s schema."""
        if self.tenant_schema:
            if tenant is None or not is_identifier(tenant):
                raise JobdError(f"resource {self.resource!r} needs a tenant (schema name)")
            return quote_qualified(tenant, self.name)
        return quote_qualified(self.schema, self.name) if self.schema else quote_ident(self.name)


class Tables:
    """The resources' tables, resolved at start (`resolve_resources`), and per tenant on
    first use when the start could not (schema strategy with no tenant known then)."""

    def __init__(self, resolved: Mapping[str, ResolvedTable] | None = None) -> None:
        self.resolved = dict(resolved or {})
        self._per_tenant: dict[tuple[str, str | None], ResolvedTable] = {}

    @classmethod
    async def check(cls, conn: Connection, spec: Spec) -> Tables:
        """Every resource's table, checked (`TableCheckError` listing all problems)."""
        return cls(await resolve_resources(conn, spec))

    async def table_for(
        self, conn: Connection, resource: Resource, tenant: str | None
    ) -> tuple[ResolvedTable, str]:
        """The resource's table and its quoted SQL name for `tenant`."""
        table = self.resolved.get(resource.name)
        if table is None or not table.checked:
            key = (resource.name, tenant if table is None or table.tenant_schema else None)
            table = self._per_tenant.get(key)
            if table is None:
                table, problems = await resolve_table(conn, resource, tenant)
                if table is None or problems:
                    raise TableCheckError(problems)
                self._per_tenant[key] = table
        return table, table.sql(tenant)


async def table_columns(conn: Connection, schema: str | None, table: str) -> list[str]:
    """The columns of a table (view, ...), in order; `TableCheckError` when it is missing."""
    row, problem = await _table_info(conn, schema, table)
    if row is None:
        raise TableCheckError([Finding((), problem)])
    return list(row["columns"])


async def _table_info(
    conn: Connection, schema: str | None, table: str
) -> tuple[Record | None, str]:
    """The catalog row of a table (columns, types, primary key), or None and why not."""
    shown = f"{schema}.{table}" if schema else table
    try:
        name = quote_qualified(schema, table) if schema else quote_ident(table)
    except ValueError:
        return None, f"invalid table name {shown!r}"
    row = await conn.fetchrow(queries()["trigger_table_info"], name)
    if row is None or row["relid"] is None:
        via = "" if schema else " (looked up via the search_path)"
        return None, f'table "{shown}" does not exist{via}'
    return row, ""


async def resolve_table(
    conn: Connection, resource: Resource, tenant: str | None = None
) -> tuple[ResolvedTable | None, list[Finding]]:
    """The table of `resource` (in `tenant`'s schema for the schema strategy) and the
    problems found with its table and primary key (column references are not checked)."""
    tenant_schema = resource.multitenancy is not None and resource.multitenancy.strategy == "schema"
    base: KeyPath = ("resources", resource.name)
    if tenant_schema and tenant is None:
        return None, [Finding((*base, "multitenancy"), tenant_needed(resource.name))]
    schema = tenant if tenant_schema else resource.table_schema
    shown = f"{schema}.{resource.table_name}" if schema else resource.table_name
    row, problem = await _table_info(conn, schema, resource.table_name)
    if row is None:
        return None, [Finding((*base, "table"), problem)]
    columns = tuple(row["columns"])
    problems: list[Finding] = []
    primary_key = resource.primary_key or tuple(row["primary_key"])
    if not primary_key:
        problems.append(
            Finding(
                (*base, "table"),
                f'table "{shown}" has no primary key; name its key columns in '
                f"resources.{resource.name}.primary_key",
            )
        )
    elif resource.primary_key:
        problems += _unknown((*base, "primary_key"), resource.primary_key, list(columns))
    table = ResolvedTable(
        resource.name,
        resource.table_schema,
        resource.table_name,
        primary_key,
        columns,
        dict(zip(columns, row["types"], strict=True)),
        tenant_schema,
        tenant=tenant if tenant_schema else None,
    )
    return table, problems


async def resolve_resources(conn: Connection, spec: Spec) -> dict[str, ResolvedTable]:
    """Every resource's table, checked; raises `TableCheckError` listing all problems."""
    tables, problems = await check_resources(conn, spec)
    if problems:
        raise TableCheckError(problems)
    return tables


async def check_resources(
    conn: Connection, spec: Spec
) -> tuple[dict[str, ResolvedTable], list[Finding]]:
    """Every resource's table that resolves, and every problem found on the way."""
    tables: dict[str, ResolvedTable] = {}
    problems: list[Finding] = []
    for resource in spec.resources.values():
        table, found = await _resolve_checked(conn, resource)
        problems += found
        if table is not None:
            tables[resource.name] = table
    return tables, problems


async def _resolve_checked(
    conn: Connection, resource: Resource
) -> tuple[ResolvedTable | None, list[Finding]]:
    tenant: str | None = None
    if resource.multitenancy is not None and resource.multitenancy.strategy == "schema":
        source = resource.list_tenants
        try:
            tenants = await list_tenants(source, conn)  # read-only itself
        except TenantSourceError as exc:
            path = ("resources", resource.name, "list_tenants", source.kind if source else "")
            return None, [Finding(path, str(exc))]
        if not tenants:
            return _unchecked(resource), []
        tenant = tenants[0]
    table, problems = await resolve_table(conn, resource, tenant)
    if table is not None:
        problems += column_problems(resource, table.columns)
    return table, problems


def _unchecked(resource: Resource) -> ResolvedTable:
    return ResolvedTable(
        resource.name,
        None,
        resource.table_name,
        resource.primary_key or (),
        (),
        tenant_schema=True,
        checked=False,
    )


def column_problems(resource: Resource, columns: Iterable[str]) -> list[Finding]:
    """Every column name in the resource's configuration that `columns` does not have."""
    known = list(columns)
    base: KeyPath = ("resources", resource.name)
    problems: list[Finding] = []
    if resource.multitenancy is not None and resource.multitenancy.attribute:
        attribute = [resource.multitenancy.attribute]
        problems += _unknown((*base, "multitenancy", "attribute"), attribute, known)
    for read in resource.reads.values():
        path: KeyPath = (*base, "reads", read.name)
        problems += _where((*path, "where"), read.where, known)
        problems += _sort((*path, "sort"), read.sort, known)
        problems += _unknown((*path, "columns"), read.columns or (), known)
    for trigger in resource.triggers.values():
        path = (*base, "triggers", trigger.name)
        problems += _where((*path, "where"), trigger.where, known)
        problems += _sort((*path, "sort"), trigger.sort or (), known)
        problems += _unknown((*path, "columns"), trigger.columns or (), known)
    for action in resource.actions.values():
        if action.update is None:
            continue
        path = (*base, "actions", action.name, "update", "set")
        problems += _unknown(path, action.update.set.keys(), known)
        for column, value in action.update.set.items():
            if isinstance(value, SqlValue):
                problems += _where((*path, column), value.sql, known, boolean=False)
    return problems


def _where(
    path: KeyPath, text: str | None, known: list[str], *, boolean: bool = True
) -> list[Finding]:
    if text is None:
        return []
    try:
        expr = parse_expression(text, boolean=boolean)
    except WhereError as exc:
        return [Finding(path, problem) for problem in exc.problems]
    return [Finding(path, problem) for problem in check_columns(expr, known)]


def _sort(path: KeyPath, keys: Iterable[SortKey], known: list[str]) -> list[Finding]:
    return _unknown(path, [key.column for key in keys], known)


def _unknown(path: KeyPath, names: Iterable[str], known: list[str]) -> list[Finding]:
    probe = Expression("", "", frozenset(names), frozenset())
    return [Finding(path, problem) for problem in check_columns(probe, known)]
