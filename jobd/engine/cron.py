"""Cron (leader service): enqueue each tick of each `CronEntry` exactly once.

Tick math is pure (`ticks_between`, `latest_tick`, `plan_ticks`, `next_delay_s`) and
works on timezone-aware datetimes: ticks are computed by croniter in the entry's IANA
timezone (DST-correct) and returned in UTC. 6-field expressions are seconds-first.

Exactly once: per entry, one transaction locks the entry's ledger row (`crons`), plans the
ticks after its `last_tick`, inserts their jobs (`insert_jobs`) and advances the ledger.
Two leaders (or a stale one) serialize on the row lock, and the second sees the advanced
ledger, so no tick is enqueued twice; a crash rolls the whole tick back. First sight of an
entry starts its ledger at `now` (no past ticks).

Which ticks run: a tick after `last_tick` is on time when the cluster was up at that
moment, i.e. not before `up_since`, the start of the oldest live node (a leader failover
or a slow loop then never loses a tick, however long ago it was). A tick before that was
missed while no daemon ran and follows `catch_up`: `none` drops it, `latest` runs only the
newest missed one (when no on-time tick runs anyway), `all` runs each one not older than
`catch_up_window_s`. Every dropped tick is logged (`cron.missed`, the ticks listed up to
`LOGGED_TICKS`). Without any live node row (tests driving the step by hand) ticks up to
two leases old count as on time.

Overlap: `skip` gives an on-time tick's job `uniq_key = "cron:<name>"`, so no tick is
enqueued while the previous run is incomplete (the tick is consumed all the same and
logged as skipped); `allow` keeps the template's key (normally none). A missed tick that
`catch_up` runs is a backfill of its own: with `skip` its key is
`cron:<name>:<tick>`, so each one runs once, even while another run is incomplete. The
tick goes into `meta.cron_tick` (ISO, UTC) and the entry's name into `meta.cron`; a
backfill also has `meta.cron_catch_up: true`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog

from jobd.common.cron import cron_iter
from jobd.engine.config import CronEntry, EngineConfig
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.engine.lifeline import MISSED_BEATS
from jobd.errors import JobdError
from jobd.sql import queries
from jobd.sql.driver import Connection

log = structlog.get_logger("jobd.engine")

MAX_TICKS = 1_000  # ticks one step enqueues per entry; the ledger continues next step
LOGGED_TICKS = 20  # dropped ticks listed in a `cron.missed` line (the count is complete)
MAX_SLEEP_S = 60.0  # re-plan at least this often (config of other nodes, clock drift)
_TINY = timedelta(microseconds=1)


class CronError(JobdError):
    """A cron entry that cannot be evaluated (bad expression or timezone)."""

    exit_code = 2


def validate_entry(entry: CronEntry) -> None:
    """Raise `CronError` when the entry's expression or timezone is unusable."""
    try:
        ZoneInfo(entry.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"cron {entry.name!r}: unknown timezone {entry.timezone!r}") from exc
    fields = entry.expression.split()
    if not (entry.expression.startswith("@") or len(fields) in (5, 6)):
        raise CronError(f"cron {entry.name!r}: expected 5 or 6 fields: {entry.expression!r}")
    try:
        cron_iter(entry.expression, datetime.now(UTC), entry.timezone)
    except (ValueError, KeyError) as exc:  # croniter's errors derive from ValueError
        raise CronError(f"cron {entry.name!r}: {exc}") from exc


def _every_hour(expression: str) -> bool:
    """True when the hour field matches every hour (then a repeated DST hour runs twice)."""
    hours = cron_iter(expression, datetime.now(UTC), "UTC").expanded[1]
    return hours == ["*"] or len(hours) == 24


def _repeated(tick: datetime) -> bool:
    """True for the second occurrence of a wall-clock time when clocks fall back."""
    return tick.fold == 1 and tick.replace(fold=0).utcoffset() != tick.utcoffset()


def ticks_between(
    expression: str, tz_name: str, after: datetime, until: datetime, limit: int = MAX_TICKS
) -> list[datetime]:
    """Ticks t with `after < t <= until` (UTC), oldest first, at most `limit`.

    A daily-style entry runs once when clocks fall back (the repeated wall-clock time is
    skipped); an entry that fires every hour runs in both hours."""
    it = cron_iter(expression, after, tz_name)
    keep_repeats = _every_hour(expression)
    found: list[datetime] = []
    while len(found) < limit:
        tick: datetime = it.get_next(datetime)
        if tick > until:
            break
        if keep_repeats or not _repeated(tick):
            found.append(tick.astimezone(UTC))
    return found


def latest_tick(expression: str, tz_name: str, at: datetime) -> datetime | None:
    """The newest tick at or before `at` (UTC), None if there is none."""
    it = cron_iter(expression, at + _TINY, tz_name)
    keep_repeats = _every_hour(expression)
    for _ in range(4):  # at most one repeated time in a row is skipped
        try:
            tick: datetime = it.get_prev(datetime)
        except (ValueError, StopIteration):
            return None
        if keep_repeats or not _repeated(tick):
            return tick.astimezone(UTC)
    return None


@dataclasses.dataclass(frozen=True)
class TickPlan:
    """What one cron step does for an entry: enqueue `run` (oldest first; the first
    `caught_up` of them are missed ticks that `catch_up` runs), log `dropped` (missed ticks
    it does not run; the oldest `limit` of them), and set the ledger to `advance_to`
    (None: nothing new, leave the ledger alone)."""

    run: list[datetime]
    advance_to: datetime | None
    caught_up: int = 0
    dropped: list[datetime] = dataclasses.field(default_factory=list)


def plan_ticks(
    entry: CronEntry, last: datetime, now: datetime, up_since: datetime, limit: int = MAX_TICKS
) -> TickPlan:
    """The ticks to enqueue for `entry` given its ledger `last`, `now` and the moment the
    cluster has been up since (see module doc)."""
    expr, tz = entry.expression, entry.timezone
    gap_end = max(last, min(up_since, now))  # ticks after it are on time
    recent = ticks_between(expr, tz, gap_end, now, limit)
    missed: list[datetime] = []
    if entry.catch_up == "all":
        window_start = max(last, now - timedelta(seconds=entry.catch_up_window_s))
        missed = ticks_between(expr, tz, window_start, gap_end, limit)
        dropped = ticks_between(expr, tz, last, min(window_start, gap_end), limit)
    else:
        dropped = ticks_between(expr, tz, last, gap_end, limit)
        if entry.catch_up == "latest" and not recent and dropped:
            missed = [latest_tick(expr, tz, gap_end) or dropped[-1]]
            dropped = [tick for tick in dropped if tick != missed[0]]
    run = missed + recent
    if len(run) >= limit:  # bounded step: continue after the last tick we enqueue
        run = run[:limit]
        return TickPlan(run, run[-1], min(len(missed), limit), dropped)
    newest = recent[-1] if recent else latest_tick(expr, tz, now)
    advance_to = newest if newest is not None and newest > last else None
    return TickPlan(run, advance_to, len(missed), dropped)


def next_delay_s(entries: Sequence[CronEntry], now: datetime) -> float:
    """Seconds from `now` to the next tick of any entry (at most `MAX_SLEEP_S`)."""
    delay_s = MAX_SLEEP_S
    for entry in entries:
        nxt: datetime = cron_iter(entry.expression, now, entry.timezone).get_next(datetime)
        delay_s = min(delay_s, (nxt - now).total_seconds())
    return max(delay_s, 0.0)


def fallback_up_since(config: EngineConfig, now: datetime) -> datetime:
    """`up_since` when no node row says how long the cluster has run: two leases, which
    cover a leader failover."""
    return now - timedelta(seconds=2.0 * config.lease_s)


def tick_spec(entry: CronEntry, tick: datetime, *, catch_up: bool = False) -> JobSpec:
    """The job for one tick: the entry's template plus the tick in meta and the overlap
    key (a backfilled missed tick, `catch_up`, is keyed by its tick)."""
    iso = tick.astimezone(UTC).isoformat()
    meta = {**entry.job.meta, "cron": entry.name, "cron_tick": iso}
    if catch_up:
        meta["cron_catch_up"] = True
    if entry.overlap == "skip":
        key = f"cron:{entry.name}:{iso}" if catch_up else f"cron:{entry.name}"
        return dataclasses.replace(
            entry.job, meta=meta, uniq_key=key, uniq_hold={}, scheduled_at=None
        )
    return dataclasses.replace(entry.job, meta=meta, scheduled_at=None)


async def cron_once(conn: Connection, config: EngineConfig, now: datetime) -> int:
    """Enqueue every entry's due ticks as of `now` (database time); returns jobs inserted."""
    q = queries(config.schema)
    cutoff = now - timedelta(seconds=MISSED_BEATS * config.heartbeat_s)
    up_since: datetime | None = await conn.fetchval(q["cron_cluster_up_since"], cutoff)
    total = 0
    for entry in config.crons:
        total += await _tick_entry(conn, config, entry, now, up_since)
    return total


async def _tick_entry(
    conn: Connection,
    config: EngineConfig,
    entry: CronEntry,
    now: datetime,
    up_since: datetime | None,
) -> int:
    q = queries(config.schema)
    async with conn.transaction():
        await conn.execute(q["cron_ledger_init"], entry.name, now)
        last: datetime = await conn.fetchval(q["cron_ledger_lock"], entry.name)
        plan = plan_ticks(entry, last, now, up_since or fallback_up_since(config, now))
        if plan.advance_to is None:
            return 0
        specs = [
            tick_spec(entry, tick, catch_up=i < plan.caught_up) for i, tick in enumerate(plan.run)
        ]
        ids = await insert_jobs(conn, specs, schema=config.schema) if specs else []
        await conn.execute(q["cron_ledger_advance"], entry.name, plan.advance_to)
    if plan.dropped:
        log.info(
            "cron.missed",
            cron=entry.name,
            dropped=len(plan.dropped),
            ticks=[tick.isoformat() for tick in plan.dropped[:LOGGED_TICKS]],
            catch_up=entry.catch_up,
            reason="no daemon ran at these ticks",
        )
    if plan.run:
        log.info(
            "cron.tick",
            cron=entry.name,
            tick=plan.run[-1].isoformat(),
            ticks=len(plan.run),
            caught_up=plan.caught_up,
            enqueued=len(ids),
            skipped=len(plan.run) - len(ids),
            job_ids=ids,
        )
    return len(ids)
