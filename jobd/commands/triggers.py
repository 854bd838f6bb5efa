"""`jobd migrate`, `jobd explain`, `jobd trigger`, `jobd schedule`."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from typing import Any

from jobd.commands.common import Db, add_config, command, json_object, parse_json
from jobd.errors import UsageError
from jobd.model import Resource, Spec, Trigger


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    add_config(sub.add_parser("migrate", help="create or upgrade jobd's tables"))
    help_text = "print a trigger's scheduler SQL and its worker's re-read SQL"
    p = add_config(sub.add_parser("explain", help=help_text))
    p.add_argument("resource")
    p.add_argument("trigger")
    p.add_argument("--tenant", help="tenant (schema multitenancy: the schema to show)")
    p = add_config(sub.add_parser(
        "trigger", help="run a trigger for rows (--pk), or its scheduler now"))  # fmt: skip
    p.add_argument("resource")
    p.add_argument("trigger")
    pk = p.add_mutually_exclusive_group()
    pk.add_argument("--pk", action="append", metavar="JSON|VALUE",
                    help="primary key: a JSON object, a JSON list of objects, or a value "
                         "for a one-column key; repeatable")  # fmt: skip
    help_text = "run the scheduler now over every row (the default without --pk)"
    pk.add_argument("--all", action="store_true", help=help_text)
    p.add_argument("--actor", metavar="JSON", help="actor object, e.g. '{\"id\": 7}'")
    p.add_argument("--tenant", help="tenant of the rows")
    p = add_config(sub.add_parser("schedule", help="run a scheduled action now"))
    p.add_argument("resource")
    p.add_argument("name")
    p.add_argument("--input", metavar="JSON", help="input object merged over action_input")
    p.add_argument("--actor", metavar="JSON", help="actor object")
    p.add_argument("--tenant", help="only this tenant (multitenant resources)")
    return {"migrate": cmd_migrate, "explain": cmd_explain, "trigger": cmd_trigger,
            "schedule": cmd_schedule}  # fmt: skip


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(choices))}"


def find_trigger(spec: Spec, resource: str, trigger: str) -> tuple[Resource, Trigger]:
    res = spec.resources.get(resource)
    if res is None:
        raise UsageError(f"unknown resource {resource!r}" + _did_you_mean(resource, spec.resources))
    trig = res.triggers.get(trigger)
    if trig is None:
        hint = _did_you_mean(trigger, res.triggers)
        raise UsageError(f"resource {resource!r} has no trigger {trigger!r}{hint}")
    return res, trig


@command
async def cmd_migrate(args: argparse.Namespace, db: Db) -> int:
    """Apply pending migrations (under an advisory lock)."""
    from jobd.sql.migrate import migrate

    async with db.pool.acquire() as conn:
        applied = await migrate(conn, db.schema)
    if applied:
        print(f"schema {db.schema}: applied migrations {', '.join(map(str, applied))}")
    else:
        print(f"schema {db.schema}: up to date")
    return 0


@command
async def cmd_explain(args: argparse.Namespace, db: Db) -> int:
    """Print the scheduler's SQL (first and later pages) and the worker's re-read SQL."""
    from jobd.triggers.sqlgen import reread_sql, scan_sql
    from jobd.triggers.tables import TableCheckError, resolve_table

    resource, trigger = find_trigger(db.spec, args.resource, args.trigger)
    async with db.pool.acquire() as conn:
        table, problems = await resolve_table(conn, resource, args.tenant)
    if table is None or problems:
        raise TableCheckError(problems or [f"resource {resource.name!r}: table not found"])
    table_sql = table.sql(args.tenant)
    scan = scan_sql(resource, trigger, table, table_sql, db.schema)
    paging = "keyset pages" if scan.paged else "one statement (order is not the primary key)"
    print(f"-- {resource.name}.{trigger.name}: scheduler {trigger.scheduler_name}, {paging}")
    print(f"-- scheduler: first page{'' if scan.paged else ' (the whole scan)'}")
    print(scan.first.rstrip() + ";\n")
    if scan.next is not None:
        print("-- scheduler: later pages (keyset after the last primary key)")
        print(scan.next.rstrip() + ";\n")
    print(f"-- worker {trigger.worker_name}: re-read of the row ($1 = primary key object)")
    print(reread_sql(resource, trigger, table, table_sql, db.schema).rstrip() + ";")
    return 0


def _primary_keys(values: list[str], pk_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    for text in values:
        try:
            value = parse_json(text, "--pk")
        except UsageError:
            value = text  # a bare string value
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                keys.append(item)
            elif len(pk_columns) == 1:
                keys.append({pk_columns[0]: item})
            else:
                raise UsageError(
                    f"--pk {text!r}: the key has columns {list(pk_columns)}: pass a JSON "
                    f"object, e.g. --pk '{{\"{pk_columns[0]}\": ...}}'"
                )
    return keys


def _runtime(db: Db) -> Any:
    from jobd.engine.registry import WorkerRegistry
    from jobd.triggers.runtime import TriggerRuntime

    # No workers or actions are built: the API calls only resolve tables and insert jobs.
    return TriggerRuntime(db.spec, WorkerRegistry(), db.pool)


@command
async def cmd_trigger(args: argparse.Namespace, db: Db) -> int:
    """Enqueue the trigger's worker for rows, or its scheduler."""
    from jobd.triggers import api

    resource, trigger = find_trigger(db.spec, args.resource, args.trigger)
    actor = json_object(args.actor, "--actor")
    rt = _runtime(db)
    if not args.pk:
        if args.tenant is not None:
            raise UsageError("--tenant needs --pk: a scheduler run scans every tenant")
        job_id = await api.schedule_trigger(rt, resource, trigger, actor=actor)
        if job_id is None:
            print(f"scheduler {trigger.scheduler_name}: a run is already waiting")
        else:
            print(f"scheduler {trigger.scheduler_name}: job {job_id} enqueued")
        return 0
    async with db.pool.acquire() as conn:
        table, _ = await rt.table_for(conn, resource, args.tenant)
    keys = _primary_keys(args.pk, table.primary_key)
    ids = await api.run_triggers(rt, resource, trigger, keys, actor=actor, tenant=args.tenant)
    skipped = len(keys) - len(ids)
    note = f", {skipped} skipped (row missing or a job already waiting)" if skipped else ""
    print(f"{trigger.worker_name}: {len(ids)} job(s) enqueued{f' {ids}' if ids else ''}{note}")
    return 0


@command
async def cmd_schedule(args: argparse.Namespace, db: Db) -> int:
    """Run a scheduled action now."""
    from jobd.triggers import api

    res = db.spec.resources.get(args.resource)
    if res is None:
        raise UsageError(
            f"unknown resource {args.resource!r}" + _did_you_mean(args.resource, db.spec.resources)
        )
    if args.name not in res.scheduled_actions:
        raise UsageError(f"resource {res.name!r} has no scheduled action {args.name!r}"
                         + _did_you_mean(args.name, res.scheduled_actions))  # fmt: skip
    job_id = await api.run_schedule(
        _runtime(db), res, args.name, input=json_object(args.input, "--input"),
        actor=json_object(args.actor, "--actor"), tenant=args.tenant,
    )  # fmt: skip
    print(f"{res.name}.{args.name}: job {job_id} enqueued")
    return 0
