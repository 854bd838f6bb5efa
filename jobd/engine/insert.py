"""Insert jobs: one statement for any number of them, uniqueness by the database.

`insert_jobs` works on whatever connection it is given, inside the caller's transaction
when there is one: the jobs (and their notification) commit or roll back with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobd.common.jsontext import json_text
from jobd.engine.jobs import JobSpec
from jobd.sql import queries
from jobd.sql.driver import Connection

INSERT_CHANNEL = "jobd_insert"
SIGNAL_CHANNEL = "jobd_signal"


def channel(schema: str, base: str) -> str:
    """The notification channel `base` for the install at `schema` (prefixed unless the
    schema is the default `jobd`, so two installs in one database do not wake each other)."""
    return base if schema == "jobd" else f"{schema}_{base}"


def _columns(specs: Sequence[JobSpec]) -> list[list[Any]]:
    """The specs as the ten column arrays `insert_jobs` unnests (JSON already encoded)."""
    cols: list[list[Any]] = [[] for _ in range(10)]
    (worker, queue, args, meta, tags, prio, max_att, sched, key, hold) = cols
    for spec in specs:
        worker.append(spec.worker)
        queue.append(spec.queue)
        args.append(json_text(spec.args) if spec.args else "{}")
        meta.append(json_text(spec.meta) if spec.meta else "{}")
        tags.append(json_text(list(spec.tags)) if spec.tags else None)
        prio.append(spec.priority)
        max_att.append(spec.max_attempts)
        sched.append(spec.scheduled_at)
        key.append(spec.uniq_key)
        hold.append(json_text(spec.uniq_hold) if spec.uniq_hold else "{}")
    return cols


async def insert_jobs(
    conn: Connection, specs: Sequence[JobSpec], *, schema: str = "jobd", notify: bool = True
) -> list[int]:
    """Insert `specs` in one statement; returns the ids inserted (unique-key conflicts are
    skipped, so a conflicting spec has no id). Jobs with `scheduled_at` in the future are
    `scheduled`, the others `available`; one notification per queue that got work."""
    if not specs:
        return []
    rows = await conn.fetch(
        queries(schema)["insert_jobs"],
        *_columns(specs),
        channel(schema, INSERT_CHANNEL),
        notify,
    )
    return [row[0] for row in rows]


def signal_payload(**fields: Any) -> str:
    """A `jobd_signal` payload: compact JSON."""
    return json_text(fields)
