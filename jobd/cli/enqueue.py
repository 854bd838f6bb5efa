"""`jobd trigger` and `jobd schedule`: ask for work now or at a time, through the SQL API.

The options of a row's job or a scheduled action's run (`--input`, `--schedule-in`,
`--scheduled-at`, `--priority`) go to `jobd.Client` as given: it checks them
(jobd.common.enqueue_options) and the SQL function decides whether a time is past, so the
CLI says what the client and the API say; every such mistake exits 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from jobd.cli.common import (
    Command,
    Db,
    add_config,
    command,
    find_schedule,
    find_trigger,
    json_object,
    parse_json,
)
from jobd.errors import UsageError


def _add_options(p: argparse.ArgumentParser, what: str) -> None:
    """The enqueue options of `jobd trigger --pk` and `jobd schedule`."""
    p.add_argument(
        "--input", metavar="JSON", help=f"input object merged over the {what}'s action_input"
    )
    p.add_argument(
        "--schedule-in",
        metavar="DURATION",
        help="run after this long (30s, 10m, 2h, 7d); the job is scheduled until then",
    )
    p.add_argument(
        "--scheduled-at",
        metavar="TIMESTAMP",
        help="run at this time (ISO 8601 with a timezone, e.g. 2026-12-24T18:00:00Z)",
    )
    p.add_argument("--priority", type=int, metavar="0-9", help=f"instead of the {what}'s")


def _when(args: argparse.Namespace) -> str:
    """How the output says when the job runs."""
    if args.schedule_in is not None:
        return f", scheduled in {args.schedule_in}"
    if args.scheduled_at is not None:
        return f", scheduled at {args.scheduled_at}"
    return ""


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "input": json_object(args.input, "--input"),
        "schedule_in": args.schedule_in,
        "scheduled_at": args.scheduled_at,
        "priority": args.priority,
    }


def register(sub: Any) -> dict[str, Command]:
    p = add_config(
        sub.add_parser("trigger", help="run a trigger for rows (--pk), or its scheduler now")
    )
    p.add_argument("resource")
    p.add_argument("trigger")
    pk = p.add_mutually_exclusive_group()
    pk.add_argument(
        "--pk",
        action="append",
        metavar="JSON|VALUE",
        help="primary key: a JSON object, a JSON list of objects, or a value "
        "for a one-column key; repeatable",
    )
    help_text = "run the scheduler now over every row (the default without --pk)"
    pk.add_argument("--all", action="store_true", help=help_text)
    p.add_argument("--actor", metavar="JSON", help="actor object, e.g. '{\"id\": 7}'")
    p.add_argument("--tenant", help="tenant of the rows")
    _add_options(p, "trigger")
    p = add_config(sub.add_parser("schedule", help="run a scheduled action now, or once at a time"))
    p.add_argument("resource")
    p.add_argument("name")
    p.add_argument("--actor", metavar="JSON", help="actor object")
    p.add_argument("--tenant", help="only this tenant (multitenant resources)")
    _add_options(p, "scheduled action")
    return {"trigger": cmd_trigger, "schedule": cmd_schedule}


def _primary_keys(values: list[str], pk_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = []
    for text in values:
        try:
            value = parse_json(text, "--pk")
        except UsageError:
            if text.lstrip()[:1] in ("{", "["):
                raise  # meant as JSON: say what is wrong with it
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


@command
async def cmd_trigger(args: argparse.Namespace, db: Db) -> int:
    """Enqueue the trigger's worker for rows, or its scheduler."""
    from jobd.triggers.api import Enqueuer
    from jobd.triggers.tables import Tables, require_tenant

    resource, trigger = find_trigger(db.spec, args.resource, args.trigger, to_run=True)
    actor = json_object(args.actor, "--actor")
    if not args.pk:
        if args.tenant is not None:
            raise UsageError("--tenant needs --pk: a scheduler run scans every tenant")
        if any(v is not None for v in _options(args).values()):
            raise UsageError(
                "--input, --schedule-in, --scheduled-at and --priority need --pk: they are "
                "options of each row's job, and a scheduler run (no --pk) takes none"
            )
        job_id = await Enqueuer(db.spec, db.pool, db.schema).schedule_trigger(
            resource.name, trigger.name, actor=actor
        )
        if job_id is None:
            print(f"scheduler {trigger.scheduler_name}: a run is already waiting")
        else:
            print(f"scheduler {trigger.scheduler_name}: job {job_id} enqueued")
        return 0
    require_tenant(resource, args.tenant)
    async with db.pool.acquire() as conn:
        table, _ = await Tables().table_for(conn, resource, args.tenant)
    keys = _primary_keys(args.pk, table.primary_key)
    ids = await Enqueuer(db.spec, db.pool, db.schema).run_triggers(
        resource.name, trigger.name, keys, actor=actor, tenant=args.tenant, **_options(args)
    )
    skipped = len(keys) - len(ids)
    note = f", {skipped} skipped (row missing or a job already waiting)" if skipped else ""
    when = _when(args) if ids else ""
    print(
        f"{trigger.worker_name}: {len(ids)} job(s) enqueued{f' {ids}' if ids else ''}{when}{note}"
    )
    return 0


@command
async def cmd_schedule(args: argparse.Namespace, db: Db) -> int:
    """Run a scheduled action now, or once at a time (a one-off event)."""
    from jobd.triggers.api import Enqueuer

    resource, schedule = find_schedule(db.spec, args.resource, args.name)
    job_id = await Enqueuer(db.spec, db.pool, db.schema).schedule(
        resource.name,
        schedule.name,
        actor=json_object(args.actor, "--actor"),
        tenant=args.tenant,
        **_options(args),
    )
    print(f"{resource.name}.{schedule.name}: job {job_id} enqueued{_when(args)}")
    return 0
