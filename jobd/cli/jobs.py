"""`jobd jobs list|show|retry|cancel`, `jobd queues list|pause|resume|scale`, `jobd status`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg

from jobd.cli.common import (
    Db,
    add_config,
    add_json,
    cell,
    command,
    print_json,
    print_table,
)
from jobd.engine import ops
from jobd.engine.jobs import JobState
from jobd.engine.ops import to_jsonable
from jobd.errors import JobdError, UsageError
from jobd.sql.values import positive_id, positive_id_problem

JOB_COLUMNS = (
    "id",
    "state",
    "outcome",
    "queue",
    "worker",
    "attempt",
    "max_attempts",
    "scheduled_at",
    "attempted_by",
)


def _positive(text: str) -> int:
    number = positive_id(text)
    if number is None:
        raise argparse.ArgumentTypeError(positive_id_problem(text))
    return number


def register(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    jobs = sub.add_parser("jobs", help="list, show, retry or cancel jobs")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = add_config(jobs_sub.add_parser("list", help="jobs, newest first"))
    p.add_argument("--state", choices=list(JobState))
    p.add_argument("--queue")
    p.add_argument("--worker")
    p.add_argument("--limit", type=_positive, default=50, help="at most this many (default 50)")
    add_json(p)
    for action, text in (
        ("show", "one job with args, meta and errors"),
        ("retry", "run a job again now"),
        ("cancel", "cancel a job"),
    ):
        p = add_config(jobs_sub.add_parser(action, help=text))
        p.add_argument("id", type=_positive, help="job id")
        add_json(p)

    queues = sub.add_parser("queues", help="list, pause, resume, scale or remove queues")
    queues_sub = queues.add_subparsers(dest="queues_command", metavar="ACTION", required=True)
    add_json(add_config(queues_sub.add_parser("list", help="queues with limits and depths")))
    create = "also when no configuration names the queue and it has no jobs (a new queue)"
    for action in ("pause", "resume"):
        p = add_config(queues_sub.add_parser(action, help=f"{action} a queue on every node"))
        p.add_argument("name")
        p.add_argument("--create", action="store_true", help=create)
    p = add_config(queues_sub.add_parser("scale", help="set a queue's per-node limit"))
    p.add_argument("name")
    p.add_argument(
        "limit",
        type=_positive,
        nargs="?",
        default=None,
        help="jobs at once per node (omit with --reset)",
    )
    p.add_argument("--reset", action="store_true", help="back to the configured limit")
    p.add_argument("--create", action="store_true", help=create)
    help_text = "forget a queue no configuration names (its settings; no unfinished jobs)"
    p = add_config(queues_sub.add_parser("remove", help=help_text))
    p.add_argument("name")

    p = add_config(sub.add_parser("status", help="nodes, leader and queue depths"))
    add_json(p)
    p.add_argument(
        "--watch",
        nargs="?",
        const=WATCH_DEFAULT_S,
        type=_interval,
        metavar="SECONDS",
        help=f"redraw every SECONDS (default {WATCH_DEFAULT_S:g}) until Ctrl-C",
    )
    return {"jobs": cmd_jobs, "queues": cmd_queues, "status": cmd_status}


WATCH_DEFAULT_S = 2.0


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.2 <= seconds <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0.2 to 3600")
    return seconds


@command
async def cmd_jobs(args: argparse.Namespace, db: Db) -> int:
    async with db.pool.acquire() as conn:
        if args.jobs_command == "list":
            rows = await ops.list_jobs(
                conn,
                db.schema,
                state=args.state,
                queue=args.queue,
                worker=args.worker,
                limit=args.limit,
            )
            print_json(rows) if args.json else print_table(rows, JOB_COLUMNS)
            return 0
        if args.jobs_command in ("retry", "cancel"):
            retry = args.jobs_command == "retry"
            if await (ops.retry_job if retry else ops.cancel_job)(conn, db.schema, args.id):
                # What the command did, not a read-back: a daemon may run the job at once.
                state = "available" if retry else "cancelled"
                if args.json:
                    print_json({"id": args.id, "state": state})
                else:
                    print(f"job {args.id}: {state}")
                return 0
        job = await ops.get_job(conn, db.schema, args.id)
    if job is None:
        raise JobdError(f"no job {args.id}")
    if args.jobs_command != "show":
        raise JobdError(f"job {args.id} is {job['state']}: cannot {args.jobs_command} it")
    _show(job, args.json)
    return 0


def _show(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(job)
        return
    width = max(len(k) for k in job)
    for key, value in job.items():
        if key == "errors":
            continue
        print(f"{key.ljust(width)}  {cell(value)}")
    print(f"{'errors'.ljust(width)}  {len(job['errors'])}")
    for entry in job["errors"]:
        text = str(entry.get("error", "")).rstrip()
        print(f"  - attempt {entry.get('attempt')} at {entry.get('at')} ({entry.get('kind')}):")
        print("    " + text.replace("\n", "\n    "))


@command
async def cmd_queues(args: argparse.Namespace, db: Db) -> int:
    action = args.queues_command
    configured = {name: q.limit for name, q in db.spec.queues.items()}
    try:
        if action != "list":
            await _change_queue(args, db, configured)
    except ops.UnknownQueue as exc:
        raise UsageError(f"{exc}; to make a new queue: jobd queues {action} ... --create") from None
    if action == "remove":
        print(f"queue {args.name}: removed")
        return 0
    async with db.pool.acquire() as conn:
        rows = await ops.list_queues(conn, db.schema, configured)
    if action != "list":
        row = next(r for r in rows if r["name"] == args.name)
        state = "paused" if row["paused"] else "running"
        print(f"queue {args.name}: {state}, limit {row['limit'] or '-'} per node")
        return 0
    if args.json:
        print_json(rows)
        return 0
    table = [
        {
            **r,
            "paused": "yes" if r["paused"] else "no",
            **{s: r["depth"].get(s, 0) for s in JobState},
        }
        for r in rows
    ]
    print_table(table, ("name", "paused", "limit", "global_limit", *JobState))
    return 0


async def _change_queue(args: argparse.Namespace, db: Db, configured: dict[str, int]) -> None:
    """pause, resume, scale or remove `args.name`, checked as docs/cli.md says."""
    from jobd.daemon.supervisor import POOL_HEADROOM, pool_size

    action, name = args.queues_command, args.name
    if action == "remove":
        await ops.remove_queue(db.pool, db.schema, name, configured=configured)
    elif action == "scale":
        if (args.limit is None) == (not args.reset):
            raise UsageError("queues scale: give a LIMIT or --reset (not both)")
        capacity = ops.PoolCapacity(pool_size(db.spec), POOL_HEADROOM)
        await ops.scale_queue(
            db.pool,
            db.schema,
            name,
            args.limit,
            configured=configured,
            capacity=capacity,
            create=args.create,
        )
    else:
        change = ops.pause_queue if action == "pause" else ops.resume_queue
        await change(db.pool, db.schema, name, configured=configured, create=args.create)


def cmd_status(args: argparse.Namespace) -> int:
    """The cluster's state once, or with --watch again and again until Ctrl-C (exit 0)."""
    if args.watch is None:
        return _status_once(args)
    try:
        return _status_watch(args)
    except KeyboardInterrupt:
        return 0


@command
async def _status_once(args: argparse.Namespace, db: Db) -> int:
    async with db.pool.acquire() as conn:
        result = await ops.status(conn, db.schema)
    if args.json:
        print_json(result)
    else:
        _print_status(result)
    return 0


@command
async def _status_watch(args: argparse.Namespace, db: Db) -> int:
    """On a terminal the screen is cleared before each redraw; into a pipe, snapshots
    follow each other (one JSON line each with --json). A database that stops answering
    is reported on stderr and asked again at the next tick."""
    redraw = sys.stdout.isatty()
    while True:
        try:
            async with db.pool.acquire() as conn:
                result: dict[str, Any] | None = await ops.status(conn, db.schema)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            print(f"jobd: status: database unreachable ({type(exc).__name__})", file=sys.stderr)
            result = None
        if result is not None and args.json:
            print(json.dumps(to_jsonable(result), default=str), flush=True)
        elif result is not None:
            stamp = datetime.now().strftime("%H:%M:%S")
            header = f"jobd status at {stamp}, every {args.watch:g}s (Ctrl-C stops)"
            sys.stdout.write("\x1b[H\x1b[2J" if redraw else "\n")
            print(header)
            _print_status(result)
            sys.stdout.flush()
        await asyncio.sleep(args.watch)


def _print_status(result: dict[str, Any]) -> None:
    leader = result["leader"]
    print(f"leader: {leader['node_id'] if leader else 'none (no live lease)'}")
    print(f"nodes: {len(result['nodes'])}")
    if result["nodes"]:
        nodes = [
            {
                **n,
                "heartbeat_age_s": f"{n['heartbeat_age_s']:.1f}",
                "leader": "*" if n["leader"] else "",
            }
            for n in result["nodes"]
        ]
        print_table(nodes, ("id", "name", "started_at", "heartbeat_age_s", "leader"))
    print("queues:")
    depths = [
        {"queue": q, **{s: d.get(s, 0) for s in JobState}}
        for q, d in sorted(result["queues"].items())
    ]
    if depths:
        print_table(depths, ("queue", *JobState))
    else:
        print("  (no jobs)")
    if result["waiting_for_worker"]:
        print("waiting for a node that runs their worker (start one with this trigger, or")
        print("set the trigger's state: deleted to cancel them):")
        print_table(result["waiting_for_worker"], ("queue", "worker", "jobs"))
