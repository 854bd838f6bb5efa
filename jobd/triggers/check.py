"""What `jobd check --db` finds that only the database and the Python path know.

    report = await check_database(conn, spec)    # report.findings (at key paths), .notes

It runs after the configuration itself is valid, and changes nothing: every statement a
trigger will run is *prepared* (parsed, analysed and planned by Postgres, never run), a
few values are converted by the database, and all of it happens in one READ ONLY
transaction that is rolled back. Each finding belongs to the key that causes it:

- the tables, primary keys and column names (`jobd.triggers.tables`);
- every `where` (triggers, reads) as an expression over its table: one that is not
  boolean, or compares values of the wrong type (`total_cents > '1O00'`);
- each trigger's statements: the scheduler's scan (first and later pages), the worker's
  re-read of its row, the row read for on_error;
- every `update` action: each `{sql}` value as an expression and as an assignment to its
  column, each literal and `{error: ...}` value converted as the action converts it;
- the placeholders of http actions against the columns their runs have: `{record.x}` in
  the worker_read's columns (every column for on_error), `{primary_key.x}` in the key;
- every `python:` entrypoint imports (actions, actor persisters, tenant lists);
- `list_tenants.sql` runs and an actor `lookup.sql` prepares (both read-only);
- the database triggers of `events:`: a note for each one missing, outdated or disabled
  (jobd.triggers.eventsync; `jobd run` and `jobd migrate -c` install them).

A schema-tenancy resource is checked in its first tenant's schema, one with no tenant yet
not at all. When jobd's own tables are not installed, the scheduler's statements (which
insert into them) cannot be prepared: a note says so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from jobd.actions.update import UpdateAction, update_statement
from jobd.common.entrypoints import load_callable
from jobd.common.jsontext import json_text
from jobd.config.durations import format_duration
from jobd.config.placeholders import placeholders, strings
from jobd.config.yamlload import KeyPath
from jobd.model import (
    Action,
    ActorPersister,
    ErrorValue,
    LiteralValue,
    Resource,
    Schedule,
    SetValue,
    Spec,
    SqlValue,
    TenantSource,
    Trigger,
)
from jobd.sql import queries
from jobd.sql.migrate import pending_versions
from jobd.triggers.actors import python_persister
from jobd.triggers.eventsync import event_notes
from jobd.triggers.sqlgen import fill, reread_sql, row_sql, scan_sql
from jobd.triggers.tables import Finding, ResolvedTable, Tables, check_resources, read_only
from jobd.where import Expression, WhereError, check_columns, compile_expression, parse_expression

NOT_MIGRATED = (
    "jobd's tables are not installed in this database yet (jobd migrate installs them), "
    "so the scheduler's statements, which insert into them, were not prepared"
)
# What an on_error action's {error: ...} values are like, to convert as the action would.
ERROR_SAMPLES = {"message": "an error", "kind": "error", "status": 500, "attempt": 1}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resting_warnings(spec: Spec) -> list[Finding]:
    """Triggers whose `on_error` cannot make a failed row stop matching: an `update` that
    sets none of the columns the trigger matches on, or an http call (which cannot change
    the row). Such a row rests for `discard_cooldown` after on_error, then runs again, and
    fails again: AshOban's trap of a webhook called forever. A python on_error may write
    anything, so it is trusted. Warnings, not errors: the configuration is valid."""
    warnings = []
    for resource in spec.resources.values():
        for trigger in resource.triggers.values():
            action = resource.actions.get(trigger.on_error or "")
            matched = _matched_columns(resource, trigger)
            if action is None or action.python is not None or not matched:
                continue
            if action.update is not None:
                if matched & set(action.update.set):
                    continue
                does, fix = f"sets only {_names(action.update.set)}", "let it set"
            else:
                does = "is an http call, which cannot change the row"
                fix = "use an update (or python) on_error that sets"
            warnings.append(
                Finding(
                    ("resources", resource.name, "triggers", trigger.name, "on_error"),
                    f"warning: on_error {action.name!r} {does}, but the trigger matches rows "
                    f"on {_names(matched)}: a row whose action fails keeps matching, and runs "
                    f"(and fails) again after each discard_cooldown "
                    f"({format_duration(trigger.discard_cooldown_s)}); {fix} one of those "
                    "columns, for example a status the where excludes",
                )
            )
    return warnings


def _matched_columns(resource: Resource, trigger: Trigger) -> set[str]:
    """The columns the trigger's where and its scheduler read's where look at."""
    texts = (trigger.where, resource.read_named(trigger.read).where)
    columns: set[str] = set()
    for text in filter(None, texts):
        with contextlib.suppress(WhereError):  # reported by the configuration check
            columns |= parse_expression(text).columns
    return columns


def _names(columns: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in sorted(columns))


async def check_database(conn: Any, spec: Spec) -> Report:
    """Everything above, for every resource of `spec` (`conn`: an asyncpg connection)."""
    return await read_only(conn, lambda: _check(conn, spec))


async def _check(conn: Any, spec: Spec) -> Report:
    tables, found = await check_resources(conn, spec)
    probe = _Probe(conn, found)
    migrated = not await pending_versions(conn, spec.database.schema)
    for resource in spec.resources.values():
        table = tables.get(resource.name)
        if table is not None and table.checked:
            await _resource(probe, resource, table, spec.database.schema, migrated=migrated)
    for path, obj in _configured(spec):
        if isinstance(obj, ActorPersister):
            await _persister(probe, path, obj)
        elif isinstance(obj, TenantSource):
            await _tenants(probe, path, obj)
        else:
            _entrypoint(probe, (*path, "python"), obj.python, f" (action {path[-1]!r})")
    notes = [] if migrated else [NOT_MIGRATED]
    if migrated:  # the database triggers of `events:`: missing, outdated, disabled
        notes += await event_notes(conn, spec, Tables(tables))
    return Report(list(probe.found.values()), notes)


class _Probe:
    """Findings by key path (the first one at a path wins) and the database's verdicts."""

    def __init__(self, conn: Any, found: list[Finding]) -> None:
        self.conn = conn
        self.found = {f.path: f for f in found}

    def add(self, path: KeyPath, message: str, *, at_key: bool = False) -> None:
        self.found.setdefault(path, Finding(path, message, at_key))

    def clean(self, *paths: KeyPath) -> bool:
        """No finding at or under any of `paths` yet."""
        return not any(f[: len(p)] == p for f in self.found for p in paths)

    async def refuses(self, sql: str, *args: Any, run: bool = False) -> str | None:
        """What the database says against `sql` (prepared; with `run`, run with `args`),
        None when nothing. Each try is a savepoint of its own."""
        try:
            async with self.conn.transaction():
                if run:
                    await self.conn.fetch(sql, *args)
                else:
                    await self.conn.prepare(sql)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            message = str(getattr(exc, "message", None) or exc)
            hint = getattr(exc, "hint", None)
            return f"{message} ({hint})" if hint else message
        return None


async def _resource(
    probe: _Probe, resource: Resource, table: ResolvedTable, schema: str, *, migrated: bool
) -> None:
    table_sql = table.sql(table.tenant)
    base: KeyPath = ("resources", resource.name)
    for read in resource.reads.values():
        await _where(probe, (*base, "reads", read.name, "where"), read.where, table_sql)
    for trigger in resource.triggers.values():
        path: KeyPath = (*base, "triggers", trigger.name)
        await _where(probe, (*path, "where"), trigger.where, table_sql)
        reads = [(*base, "reads", name) for name in (trigger.read, trigger.worker_read) if name]
        if migrated and probe.clean(path, *reads):
            await _statements(probe, path, resource, trigger, table, schema)
        _templates(probe, resource, trigger, table)
    for action in resource.actions.values():
        if action.update is not None:
            await _update(probe, resource, action, table, table_sql)


def _compiled(text: str, *, boolean: bool = True, alias: str = "t") -> str | None:
    """The compiled expression (None: invalid, which the configuration check reported)."""
    try:
        return compile_expression(parse_expression(text, boolean=boolean), alias=alias)
    except WhereError:
        return None


async def _where(probe: _Probe, path: KeyPath, text: str | None, table_sql: str) -> None:
    compiled = None if text is None or not probe.clean(path) else _compiled(text)
    if compiled is not None:
        sql = fill(queries()["check_where"], {"table": table_sql, "filter": compiled})
        problem = await probe.refuses(sql)
        if problem:
            probe.add(path, problem)


async def _statements(
    probe: _Probe,
    path: KeyPath,
    resource: Resource,
    trigger: Trigger,
    table: ResolvedTable,
    schema: str,
) -> None:
    table_sql = table.sql(table.tenant)
    scan = scan_sql(resource, trigger, table, table_sql, schema)
    statements = [("the scheduler's scan", scan.first)]
    if scan.next is not None:
        statements.append(("the scheduler's later pages", scan.next))
    statements.append(
        ("the worker's re-read", reread_sql(resource, trigger, table, table_sql, schema))
    )
    if trigger.on_error is not None:
        lock = trigger.lock_for_update
        statements.append(
            ("the row read for on_error", row_sql(table, table_sql, schema, lock=lock))
        )
    for what, sql in statements:
        problem = await probe.refuses(sql)
        if problem:
            probe.add(path, f"{what} does not prepare: {problem}", at_key=True)
            return


def _templates(probe: _Probe, resource: Resource, trigger: Trigger, table: ResolvedTable) -> None:
    """`{record.x}` and `{primary_key.x}` of the trigger's http actions against the row
    each one gets: the worker_read's columns, or every column for on_error."""
    read = resource.read_named(trigger.worker_read)
    for key in ("action", "on_success", "on_error"):
        name = getattr(trigger, key)
        action = resource.actions.get(name or "")
        if action is None or action.http is None:
            continue
        every = key == "on_error" or read.columns is None
        columns = table.columns if every else (*table.primary_key, *(read.columns or ()))
        where = f"worker_read {trigger.worker_read or '(default)'} of trigger {trigger.name}"
        path: KeyPath = ("resources", resource.name, "actions", action.name, "http")
        for sub, text in _http_strings(action):
            for placeholder in placeholders(text):
                problem = _column_problem(placeholder.path, table, columns, where)
                if problem:
                    probe.add((*path, *sub), f"{{{placeholder.text}}}: {problem}")


def _http_strings(action: Action) -> Iterator[tuple[tuple[Any, ...], str]]:
    assert action.http is not None
    yield ("url",), action.http.url
    yield from strings(dict(action.http.headers), ("headers",))
    if action.http.body is not None:
        yield from strings(action.http.body, ("body",))


def _column_problem(
    path: tuple[str, ...], table: ResolvedTable, columns: tuple[str, ...], where: str
) -> str | None:
    if path[0] == "primary_key" and path[1] not in table.primary_key:
        return f'"{path[1]}" is not a primary key column (the key: {", ".join(table.primary_key)})'
    if path[0] != "record" or path[1] in columns:
        return None
    if path[1] in table.columns:
        return f'column "{path[1]}" is not among the columns of {where}: add it to its columns'
    probe = Expression("", "", frozenset([path[1]]), frozenset())
    return "; ".join(check_columns(probe, table.columns))


async def _update(
    probe: _Probe, resource: Resource, action: Action, table: ResolvedTable, table_sql: str
) -> None:
    """Each `set:` entry as the update action will run it (see the module docs)."""
    assert action.update is not None
    path: KeyPath = ("resources", resource.name, "actions", action.name, "update", "set")
    built = UpdateAction(action.name, resource, action.update)
    for column, value in action.update.set.items():
        if column not in table.columns or not probe.clean((*path, column)):
            continue  # an unknown column is the table check's finding
        if isinstance(value, SqlValue):
            await _sql_value(probe, (*path, column), value, built, table, table_sql)
            continue
        sample = _sample(value)
        if sample is None:
            continue  # {input: ...} and {response: ...}: known only when a job runs
        query = fill(queries()["check_set_value"], {"table": table_sql})
        problem = await probe.refuses(query, json_text({column: sample}), run=True)
        if problem:
            shown = _shown(value)
            kind = table.types.get(column, "?")
            probe.add((*path, column), f"{shown} does not fit column {column} ({kind}): {problem}")


async def _sql_value(
    probe: _Probe,
    path: KeyPath,
    value: SqlValue,
    built: UpdateAction,
    table: ResolvedTable,
    table_sql: str,
) -> None:
    compiled = _compiled(value.sql, boolean=False)
    if compiled is None:
        return
    query = fill(queries()["check_expression"], {"table": table_sql, "expression": compiled})
    problem = await probe.refuses(query)
    if problem:
        probe.add((*path, "sql"), problem)
        return
    column = path[-1]
    assert isinstance(column, str)
    assignment = ((column, built.expressions[column]),)
    problem = await probe.refuses(
        update_statement(table_sql, (column,), assignment, table.primary_key)
    )
    if problem:
        probe.add(path, problem)


def _sample(value: SetValue) -> Any:
    """The value an update binds for `value`, or a typical one; None when unknowable."""
    if isinstance(value, LiteralValue):
        return value.value
    if isinstance(value, ErrorValue):
        return ERROR_SAMPLES.get(value.field)
    return None


def _shown(value: SetValue) -> str:
    if isinstance(value, ErrorValue):
        kind = "a number" if isinstance(ERROR_SAMPLES.get(value.field), int) else "text"
        return f"{{error: {value.field}}} ({kind})"
    return f"the value {json_text(_sample(value))}"


def _configured(spec: Spec) -> Iterator[tuple[KeyPath, Any]]:
    """(key path, object) of every persister, tenant source and python action, each
    object once, at the place it was written (an inherited one is the same object)."""
    seen: set[int] = set()

    def once(path: KeyPath, obj: Any) -> Iterator[tuple[KeyPath, Any]]:
        if obj is not None and id(obj) not in seen:
            seen.add(id(obj))
            yield path, obj

    yield from once(("actor_persister",), spec.actor_persister)
    yield from once(("list_tenants",), spec.list_tenants)
    for resource in spec.resources.values():
        base: KeyPath = ("resources", resource.name)
        yield from once((*base, "list_tenants"), resource.list_tenants)
        for action in resource.actions.values():
            if action.python is not None:
                yield from once((*base, "actions", action.name), action)
        named: list[tuple[str, Trigger | Schedule]] = [
            *(("triggers", t) for t in resource.triggers.values()),
            *(("scheduled_actions", s) for s in resource.scheduled_actions.values()),
        ]
        for kind, item in named:
            path: KeyPath = (*base, kind, item.name)
            yield from once((*path, "actor_persister"), item.actor_persister)
            yield from once((*path, "list_tenants"), item.list_tenants)


def _entrypoint(probe: _Probe, path: KeyPath, text: str | None, context: str) -> None:
    if text is None:
        return
    try:
        load_callable(text, context=context)
    except Exception as exc:  # the user's module: whatever importing it raises
        probe.add(path, str(exc))


async def _persister(probe: _Probe, path: KeyPath, persister: ActorPersister) -> None:
    if persister.python is not None:
        try:
            python_persister(persister.python)
        except Exception as exc:  # importing or building the user's object
            probe.add((*path, "python"), str(exc))
    if persister.lookup_sql is not None and probe.clean((*path, "lookup", "sql")):
        problem = await probe.refuses(persister.lookup_sql)
        if problem:
            probe.add((*path, "lookup", "sql"), problem)


async def _tenants(probe: _Probe, path: KeyPath, source: TenantSource) -> None:
    if source.kind == "python":
        _entrypoint(probe, (*path, "python"), source.entrypoint, " (list_tenants)")
    elif source.kind == "sql" and source.sql and probe.clean((*path, "sql")):
        problem = await probe.refuses(source.sql, run=True)
        if problem:
            probe.add((*path, "sql"), problem)
