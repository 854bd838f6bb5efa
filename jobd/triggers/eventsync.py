"""Keep the database's change-data triggers in step with the configuration.

    result = await sync_events(conn, spec, tables)       # jobd run (start, reload), migrate -c
    notes = await event_notes(conn, spec, tables)        # jobd check --db
    await install_tenants(conn, schema, tables, resource, trigger, tenants)  # scheduler run

The configuration wants, for every event of every trigger that is not deleted, the
function and the trigger of jobd.triggers.events (a paused trigger keeps them: its jobs
wait, as the scan's do). The database has what `event_installed_*` list: jobd's
`jobd_*` functions in its schema and the triggers calling them. Idempotent: an object
whose COMMENT carries the wanted definition hash is left alone, so a start with nothing
changed only reads the catalog. Otherwise, in one transaction under an advisory lock
(two daemons starting on one configuration take turns, and the second finds nothing left
to do): missing or outdated functions are created or replaced, missing triggers created,
outdated ones dropped and created again, and the triggers and functions nothing wants any
more (an event, a trigger or a tenant that left the configuration) dropped. A trigger
disabled by an operator (`ALTER TABLE ... DISABLE TRIGGER`) is left disabled: `jobd check
--db` notes it (as it notes a missing or outdated one), and the scan still finds its rows.

Schema tenancy: the trigger goes on each tenant's table that `list_tenants` names and
that exists (a tenant without the table yet is skipped, and gets it at a later sync);
the scheduler's run calls `install_tenants` with the tenants it just listed, so a new
tenant's table gets its trigger at the trigger's next scheduler run (or the next start or
reload with `scheduler_cron: false`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from jobd.config.yamlload import format_path
from jobd.model import Resource, Spec, Trigger
from jobd.sql import queries
from jobd.sql.driver import Connection
from jobd.sql.ident import quote_ident
from jobd.sql.migrate import lock_key
from jobd.triggers.events import (
    EventFunction,
    EventTrigger,
    digest_of,
    drop_function_sql,
    drop_trigger_sql,
    event_function,
    event_trigger,
)
from jobd.triggers.jobs import tenant_mode
from jobd.triggers.tables import TableCheckError, Tables
from jobd.triggers.tenants import list_tenants

log = structlog.get_logger("jobd.triggers")


@dataclass
class Wanted:
    """The functions and triggers the configuration wants."""

    functions: dict[str, EventFunction] = field(default_factory=dict)  # by name
    triggers: list[tuple[EventTrigger, Trigger, Resource]] = field(default_factory=list)


@dataclass(frozen=True)
class Installed:
    functions: dict[str, str | None]  # name -> definition hash
    triggers: dict[
        tuple[int, str], tuple[str, str | None, bool]
    ]  # (relid, name) -> table, hash, enabled


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)  # "name on table" / function names
    dropped: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.dropped)


def with_events(spec: Spec) -> Iterable[tuple[Resource, Trigger]]:
    for resource in spec.resources.values():
        for trigger in resource.triggers.values():
            if trigger.events and trigger.state != "deleted":
                yield resource, trigger


async def wanted(
    conn: Connection,
    schema: str,
    pairs: Iterable[tuple[Resource, Trigger]],
    tables: Tables,
    tenants: Sequence[str] | None = None,
) -> Wanted:
    """What the triggers of `pairs` want installed. Schema tenancy: in `tenants` when
    given, else in the tenants `list_tenants` names now."""
    want = Wanted()
    for resource, trigger in pairs:
        for tenant in await _tenants_of(conn, resource, trigger, tenants):
            try:
                table, table_sql = await tables.table_for(conn, resource, tenant)
            except TableCheckError as exc:  # a tenant whose table is not there yet
                if tenant is not None:
                    log.warning(
                        "events.tenant_skipped",
                        trigger=trigger.worker_name,
                        tenant=tenant,
                        error=str(exc),
                    )
                continue
            for event in trigger.events:
                function = event_function(resource, trigger, event, table, schema)
                function = want.functions.setdefault(function.name, function)
                want.triggers.append(
                    (event_trigger(function, table_sql, schema), trigger, resource)
                )
    return want


async def _tenants_of(
    conn: Connection,
    resource: Resource,
    trigger: Trigger,
    given: Sequence[str] | None,
) -> Sequence[str | None]:
    if tenant_mode(resource, trigger) != "schema":
        return [None]
    if given is not None:
        return given
    return await list_tenants(trigger.list_tenants, conn, identifiers=True)


async def installed(conn: Connection, schema: str) -> Installed:
    """jobd's event functions and triggers as the catalog has them."""
    q = queries(schema)
    functions = {
        row["name"]: digest_of(row["comment"])
        for row in await conn.fetch(q["event_installed_functions"], quote_ident(schema))
    }
    triggers = {
        (int(row["relid"]), row["name"]): (
            row["table_sql"],
            digest_of(row["comment"]),
            row["enabled"],
        )
        for row in await conn.fetch(q["event_installed_triggers"], quote_ident(schema))
    }
    return Installed(functions, triggers)


async def _relids(conn: Connection, schema: str, want: Wanted) -> dict[str, int | None]:
    names = sorted({t.table_sql for t, _, _ in want.triggers})
    rows = await conn.fetch(queries(schema)["event_relids"], names)
    return {row["name"]: row["relid"] for row in rows}


@dataclass
class _Plan:
    functions: list[EventFunction] = field(default_factory=list)  # create or replace
    create: list[EventTrigger] = field(default_factory=list)
    drop: list[tuple[str, str]] = field(default_factory=list)  # (trigger name, table)
    drop_functions: list[str] = field(default_factory=list)


def _plan(want: Wanted, have: Installed, relids: dict[str, int | None], *, drop: bool) -> _Plan:
    plan = _Plan()
    for function in want.functions.values():
        if have.functions.get(function.name, "") != function.digest:
            plan.functions.append(function)
    keep: set[tuple[int, str]] = set()
    for tg, _, _ in want.triggers:
        relid = relids.get(tg.table_sql)
        if relid is None:
            continue
        keep.add((relid, tg.name))
        found = have.triggers.get((relid, tg.name))
        if found is None:
            plan.create.append(tg)
        elif found[1] != tg.digest:
            plan.drop.append((tg.name, found[0]))
            plan.create.append(tg)
    if drop:
        for key, (table_sql, _, _) in have.triggers.items():
            if key not in keep:
                plan.drop.append((key[1], table_sql))
        plan.drop_functions = [n for n in have.functions if n not in want.functions]
    return plan


def _empty(plan: _Plan) -> bool:
    return not (plan.functions or plan.create or plan.drop or plan.drop_functions)


async def _apply(conn: Connection, schema: str, want: Wanted, *, drop: bool) -> SyncResult:
    """Compare, then (if anything differs) change under the lock, comparing again there."""
    relids = await _relids(conn, schema, want)
    if _empty(_plan(want, await installed(conn, schema), relids, drop=drop)):
        return SyncResult()
    result = SyncResult()
    async with conn.transaction():
        await conn.execute(queries(schema)["event_lock"], lock_key(f"events:{schema}"))
        plan = _plan(want, await installed(conn, schema), relids, drop=drop)
        for name, table_sql in plan.drop:
            await conn.execute(drop_trigger_sql(schema, name, table_sql))
            result.dropped.append(f"{name} on {table_sql}")
        for function in plan.functions:
            await conn.execute(function.sql)
            await conn.execute(function.comment_sql)
            result.created.append(function.name)
        for tg in plan.create:
            await conn.execute(tg.sql)
            await conn.execute(tg.comment_sql)
            result.created.append(f"{tg.name} on {tg.table_sql}")
        for name in plan.drop_functions:
            await conn.execute(drop_function_sql(schema, name))
            result.dropped.append(name)
    if result.changed:
        log.info("events.synced", created=result.created, dropped=result.dropped)
    return result


async def sync_events(conn: Connection, spec: Spec, tables: Tables) -> SyncResult:
    """Install, update and remove the database triggers so they are what `spec` wants."""
    schema = spec.database.schema
    want = await wanted(conn, schema, with_events(spec), tables)
    return await _apply(conn, schema, want, drop=True)


async def install_tenants(
    conn: Connection,
    schema: str,
    tables: Tables,
    resource: Resource,
    trigger: Trigger,
    tenants: Sequence[str],
) -> SyncResult:
    """Schema tenancy: the trigger's database triggers on the tables of `tenants` (the
    scheduler's run just listed them); installs what is missing, removes nothing."""
    want = await wanted(conn, schema, [(resource, trigger)], tables, tenants)
    return await _apply(conn, schema, want, drop=False)


async def event_notes(conn: Connection, spec: Spec, tables: Tables) -> list[str]:
    """`jobd check --db`: what differs between the database triggers and the
    configuration, one note each, at the trigger's `events` key: missing, outdated,
    disabled, or installed but wanted by nothing. Notes, not errors, as for jobd's own
    tables before `jobd migrate`: the next `jobd run` or `jobd migrate -c` brings them
    in step (a disabled one excepted: jobd leaves an operator's choice alone)."""
    schema = spec.database.schema
    want = await wanted(conn, schema, with_events(spec), tables)
    have = await installed(conn, schema)
    relids = await _relids(conn, schema, want)
    notes: list[str] = []
    fix = "jobd run or jobd migrate -c CONFIG"
    kept = {(relids.get(tg.table_sql), tg.name) for tg, _, _ in want.triggers}
    for tg, trigger, resource in want.triggers:
        path = format_path(("resources", resource.name, "triggers", trigger.name, "events"))
        relid = relids.get(tg.table_sql)
        found = None if relid is None else have.triggers.get((relid, tg.name))
        fn_digest = have.functions.get(tg.function.name)
        what = f"{path}: database trigger {tg.name} on {tg.table_sql} ({tg.function.event})"
        if found is None:
            notes.append(f"{what} is missing ({fix} installs it)")
        elif found[1] != tg.digest or fn_digest != tg.function.digest:
            notes.append(f"{what} is outdated ({fix} replaces it)")
        elif not found[2]:
            notes.append(f"{what} is disabled: the scheduler's scan is the only safety net")
    for (relid, name), (table_sql, _, _) in have.triggers.items():
        if (relid, name) not in kept:
            notes.append(
                f"database trigger {name} on {table_sql} is wanted by no trigger now "
                f"({fix} removes it)"
            )
    return notes
