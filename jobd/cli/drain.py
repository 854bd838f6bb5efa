"""`jobd drain`: run the schedulers once and every available job to completion, here and
now, then exit with a summary (for a user's CI and for cron-less batch runs)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from jobd.cli.common import Command, Db, add_config, command, find_trigger
from jobd.errors import UsageError


def register(sub: Any) -> dict[str, Command]:
    help_text = "run the schedulers once and every available job, then exit with a summary"
    p = add_config(sub.add_parser("drain", help=help_text))
    p.add_argument(
        "--queue",
        action="append",
        metavar="QUEUE",
        help="only this queue's jobs (repeatable; default: the triggers' queues, else all)",
    )
    p.add_argument(
        "--trigger",
        action="append",
        metavar="RESOURCE.TRIGGER",
        help="only this trigger's scheduler and jobs (repeatable; default: every active one)",
    )
    p.add_argument(
        "--no-schedule",
        action="store_true",
        help="run only the jobs already waiting; enqueue no scheduler run",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, metavar="SECONDS", help="give up after (300)"
    )
    return {"drain": cmd_drain}


@command
async def cmd_drain(args: argparse.Namespace, db: Db) -> int:
    """Exit 0 when every attempt succeeded, 1 when one failed (retried later or
    discarded): the summary says which."""
    from jobd.testing import JobdTest

    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    chosen = [_trigger_arg(db, text) for text in args.trigger or []]
    queues = list(args.queue or [])
    if chosen and not queues:
        queues = sorted({q for _, t in chosen for q in (t.queue, t.scheduler_queue)})
    jobd = await JobdTest.on_pool(db.spec, db.pool)
    try:
        scheduled = 0
        if not args.no_schedule:
            if chosen:
                for resource, trigger in chosen:
                    scheduled += await jobd.schedule_triggers(resource.name, trigger.name)
            else:
                scheduled = await jobd.schedule_triggers()
        ran = await jobd.drain(queues or None, timeout_s=args.timeout)
    finally:
        await jobd.close()
    print(f"scheduler runs enqueued: {scheduled}")
    print(f"jobs run: {len(ran.jobs)}")
    outcomes = ", ".join(f"{kind} {n}" for kind, n in sorted(ran.outcomes.items()) if n)
    print(f"attempts: {outcomes or 'none'}")
    for job in ran.jobs:
        if job.state not in ("completed", "cancelled"):
            print(f"  job {job.id} {job.worker}: {job.state} ({_last_error(job.errors)})")
    return 1 if ran.failed else 0


def _last_error(errors: Sequence[Mapping[str, Any]]) -> str:
    """The last error's last line (its message; a traceback's last line names it)."""
    text = str(errors[-1].get("error") or "") if errors else ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no error recorded"


def _trigger_arg(db: Db, text: str) -> Any:
    resource, dot, trigger = text.partition(".")
    if not dot or not resource or not trigger:
        raise UsageError(f"--trigger {text!r}: write it as RESOURCE.TRIGGER (orders.process)")
    return find_trigger(db.spec, resource, trigger, to_run=True)
