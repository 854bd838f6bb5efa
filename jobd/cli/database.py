"""`jobd migrate` and `jobd explain`: jobd's schema, and the SQL a trigger runs."""

from __future__ import annotations

import argparse
from typing import Any

from jobd.cli.common import Command, Db, add_config, command, find_trigger


def register(sub: Any) -> dict[str, Command]:
    help_text = "create or upgrade jobd's tables and write the configuration's SQL API registry"
    p = add_config(sub.add_parser("migrate", help=help_text))
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the migrations it would apply and what it would write; change nothing",
    )
    help_text = (
        "print a trigger's scheduler SQL, its worker's re-read SQL, and the database "
        "function and trigger of each of its events"
    )
    p = add_config(sub.add_parser("explain", help=help_text))
    p.add_argument("resource")
    p.add_argument("trigger")
    p.add_argument("--tenant", help="tenant (schema multitenancy: the schema to show)")
    return {"migrate": cmd_migrate, "explain": cmd_explain}


@command
async def cmd_migrate(args: argparse.Namespace, db: Db) -> int:
    """Apply pending migrations (under an advisory lock), then write the configuration's
    triggers and schedules to the SQL API's registry and install the database triggers of
    its `events:`, as `jobd run` does: the SQL functions accept them at once, the events
    enqueue at once, and their jobs wait for a daemon."""
    from jobd.sql.migrate import migrate
    from jobd.triggers.eventsync import sync_events, with_events
    from jobd.triggers.sql_api import sync_registry
    from jobd.triggers.tables import Tables

    if args.dry_run:
        return await _dry_run(db)
    async with db.pool.acquire() as conn:
        applied = await migrate(conn, db.schema)
        triggers, schedules = await sync_registry(conn, db.spec)
        # Tables are resolved (and checked) only when some trigger has events to install.
        wants_events = any(True for _ in with_events(db.spec))
        tables = await Tables.check(conn, db.spec) if wants_events else Tables()
        events = await sync_events(conn, db.spec, tables)
    if applied:
        print(f"schema {db.schema}: applied migrations {', '.join(map(str, applied))}")
    else:
        print(f"schema {db.schema}: up to date")
    counts = ", ".join(
        f"{n} {word}{'' if n == 1 else 's'}"
        for n, word in [(triggers, "trigger"), (schedules, "schedule")]
    )
    print(f"registry: {counts} (jobd.run_trigger and jobd.run_schedule accept them now)")
    if events.changed:
        print(f"database triggers: created {len(events.created)}, dropped {len(events.dropped)}")
    elif wants_events:
        print("database triggers: up to date")
    return 0


async def _dry_run(db: Db) -> int:
    """What `jobd migrate` would do, read only: the pending migrations by number and name."""
    from jobd.sql import BASELINE, migrations
    from jobd.sql.migrate import applied_versions

    async with db.pool.acquire() as conn:
        applied = await applied_versions(conn, db.schema)
    known = [*BASELINE, *migrations(db.schema)]
    pending = [m for m in known if applied is None or m.version not in applied]
    names = ", ".join(f"{m.version} ({m.name})" for m in pending)
    if applied is None:
        print(f"schema {db.schema}: not installed; would create it and record migrations {names}")
    elif pending:
        print(f"schema {db.schema}: would apply migrations {names}")
    else:
        print(f"schema {db.schema}: up to date")
    print(f"functions: would create or replace jobd's SQL functions in {db.schema} (as always)")
    triggers = sum(len(r.triggers) for r in db.spec.resources.values())
    schedules = sum(len(r.scheduled_actions) for r in db.spec.resources.values())
    print(f"registry: would write {triggers} triggers, {schedules} schedules (nothing changed)")
    events = sum(len(t.events) for t in db.spec.triggers() if t.state != "deleted")
    print(f"database triggers: would install or update {events} (events:), remove any other")
    return 0


@command
async def cmd_explain(args: argparse.Namespace, db: Db) -> int:
    """Print the scheduler's SQL (first and later pages), the worker's re-read SQL, and for
    each event the function and trigger jobd installs (the console's trigger page shows
    the same text: jobd.console.rows.explain_sql)."""
    from jobd.console.rows import explain_sql, table_of

    resource, trigger = find_trigger(db.spec, args.resource, args.trigger)
    async with db.pool.acquire() as conn:
        table = await table_of(conn, resource, args.tenant)
    print(explain_sql(resource, trigger, table, args.tenant, db.schema))
    return 0
