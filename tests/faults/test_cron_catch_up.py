"""Issue 11, case 12: cron `catch_up` with real daemons stopped and started again
(jobd.engine.cron). A tick is on time when the cluster was up at that moment (since the
start of its oldest live node); ticks missed while no daemon ran follow `catch_up`:
`none` drops them (logged as `cron.missed`), `latest` runs only the newest one, `all`
runs each one (with `overlap: skip`, each under a key of its own)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.faults.daemon import DaemonProc
from tests.faults.edge_daemon import jobd_code, settle, start_daemon

pytestmark = pytest.mark.faults

LATEST_EVERY_S = 5  # the `latest` entry ticks every 5 s (see the config)
# At least this long without a daemon, and the restart on a tick of `latest`: at least
# two of its ticks are missed (and more of the every-second entries').
GAP_S = LATEST_EVERY_S + 1.0
SECOND = timedelta(seconds=1)

# Three scheduled actions, defaults but for `cron` (6 fields: every second, so a few
# seconds make many ticks) and `catch_up` (the case). `overlap` is the default, `skip`.
# The `latest` entry ticks every 5 s: `latest` runs the newest missed tick only when no
# on-time tick runs in the same step, and the test starts the second daemon just after
# one of its ticks, so its first step (within 5 s of the launch; start-up takes about
# 2 s) has none.
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "off"}}
resources:
  clock:
    table: public.clock
    actions:
      tick: {{python: "tests.faults.actions:tick"}}
    scheduled_actions:
      none: {{cron: "* * * * * *", action: tick}}
      latest: {{cron: "*/{latest_every} * * * * *", action: tick, catch_up: latest}}
      all: {{cron: "* * * * * *", action: tick, catch_up: all}}
"""

TABLES = """
CREATE TABLE public.clock (id int PRIMARY KEY);
CREATE TABLE public.ticks (job_id bigint NOT NULL, node text NOT NULL);
"""


def scheduled(entry: str, after: datetime, until: datetime) -> list[datetime]:
    """The entry's ticks t with after < t <= until (whole seconds, every 1 or 3 s)."""
    every = LATEST_EVERY_S if entry == "latest" else 1
    tick = after.replace(microsecond=0) + SECOND
    found = []
    while tick <= until:
        if tick.second % every == 0:
            found.append(tick)
        tick += SECOND
    return found


async def cron_jobs(conn: asyncpg.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every cron job, per entry (`meta.cron`'s last part), oldest tick first."""
    rows = await conn.fetch(
        "SELECT meta, coalesce(uniq_key, meta->>'uniq_key') AS key"
        " FROM jobd.jobs WHERE meta ? 'cron_tick'"
    )
    jobs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        meta = json.loads(row["meta"])
        entry = str(meta["cron"]).rsplit(".", 1)[-1]
        tick = datetime.fromisoformat(meta["cron_tick"])
        jobs.setdefault(entry, []).append(
            {
                "tick": tick,
                "cron": meta["cron"],
                "catch_up": bool(meta.get("cron_catch_up")),
                "key": row["key"],
            }
        )
    for found in jobs.values():
        found.sort(key=lambda job: job["tick"])
    return jobs


async def stop_between_ticks(conn: asyncpg.Connection, daemon: DaemonProc) -> float:
    """SIGTERM early in a second once every cron job so far completed (so no tick's job
    is left waiting); returns how long the stop took."""

    async def quiet() -> bool:
        return bool(
            await conn.fetchval(
                "SELECT NOT EXISTS (SELECT FROM jobd.jobs WHERE state <> 'completed')"
                " AND extract(milliseconds FROM clock_timestamp())::int % 1000"
                " BETWEEN 150 AND 450"
            )
        )

    assert await settle(quiet, 10), "cron jobs did not complete"
    stopping = time.monotonic()
    assert await daemon.stop() == 0
    return time.monotonic() - stopping


async def test_catch_up_after_a_stop(database_url: str, tmp_path: Path) -> None:
    """A daemon runs three every-second-ish scheduled actions (catch_up none, latest, all)
    for about 4 s and is stopped (SIGTERM); no daemon runs for 6 to 11 s; a daemon
    starts again and runs for about 4 s. With `none` no job exists for a tick between the
    stop and the restart (they are logged in `cron.missed`); with `latest` exactly one,
    the newest of them (`meta.cron_catch_up`); with `all` (and the default `overlap:
    skip`) one for each, each with its own key `cron:<name>:<tick>`. For each entry the
    ticks while a daemon ran each have exactly one job: none lost, none doubled."""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=database_url, latest_every=LATEST_EVERY_S))
    conn = await asyncpg.connect(database_url)
    daemons: list[DaemonProc] = []
    try:
        await conn.execute(TABLES)
        daemons.append(await start_daemon(config, tmp_path / "first.log"))
        print(f"\njobd code: {await jobd_code(daemons[0])}")
        await daemons[0].ready()

        async def some_ticks() -> bool:
            found = await cron_jobs(conn)
            return len(found.get("none", [])) >= 4 and len(found.get("all", [])) >= 4

        assert await settle(some_ticks, 15)
        first_stop_s = await stop_between_ticks(conn, daemons[0])
        stopped_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
        ledger = dict(await conn.fetch("SELECT name, last_tick FROM jobd.crons"))
        ledger = {name.rsplit(".", 1)[-1]: tick for name, tick in ledger.items()}
        assert not (
            await conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE state <> 'completed'")
        )

        async def restart_time() -> bool:  # a bounded wait: the point is that no daemon runs
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            return (
                now - stopped_at >= timedelta(seconds=GAP_S)
                and now.second % LATEST_EVERY_S == 0
                and 50_000 <= now.microsecond <= 300_000
            )

        assert await settle(restart_time, GAP_S + 2 * LATEST_EVERY_S + 1)
        launched = time.monotonic()
        daemons.append(await start_daemon(config, tmp_path / "second.log"))
        await daemons[1].ready()
        ready_s = time.monotonic() - launched
        up_since: datetime = await conn.fetchval("SELECT min(started_at) FROM jobd.nodes")

        async def more_ticks() -> bool:
            found = await cron_jobs(conn)
            return sum(1 for job in found.get("none", []) if job["tick"] > up_since) >= 4

        assert await settle(more_ticks, 15)
        second_stop_s = await stop_between_ticks(conn, daemons[1])
        final = dict(await conn.fetch("SELECT name, last_tick FROM jobd.crons"))
        final = {name.rsplit(".", 1)[-1]: tick for name, tick in final.items()}
        jobs = await cron_jobs(conn)
        missed_lines = {
            str(e["cron"]).rsplit(".", 1)[-1]: e for e in daemons[1].find("cron.missed")
        }
        print(
            f"first daemon stopped in {first_stop_s:.2f} s at {stopped_at:%H:%M:%S.%f};"
            f" second ready {ready_s:.2f} s after launch, node up since"
            f" {up_since:%H:%M:%S.%f}, stopped in {second_stop_s:.2f} s"
        )

        problems = []
        for entry in ("none", "latest", "all"):
            found = jobs.get(entry, [])
            ticks = [job["tick"] for job in found]
            first_run = [t for t in ticks if t <= ledger[entry]]
            gap = scheduled(entry, ledger[entry], up_since)
            in_gap = [job for job in found if ledger[entry] < job["tick"] <= up_since]
            on_time_after = scheduled(entry, up_since, final[entry])
            after = [t for t in ticks if t > up_since]
            expected_first = (
                scheduled(entry, first_run[0] - SECOND, ledger[entry]) if first_run else []
            )
            missed = missed_lines.get(entry, {})
            ran = [f"{job['tick']:%H:%M:%S}" for job in in_gap]
            print(
                f"{entry:>6}: first run {len(first_run)} jobs ({len(expected_first)} ticks);"
                f" {len(gap)} ticks missed ({gap[0]:%H:%M:%S}-{gap[-1]:%H:%M:%S}): jobs for"
                f" {ran};"
                f" cron.missed dropped={missed.get('dropped')}; after the restart"
                f" {len(after)} jobs ({len(on_time_after)} on-time ticks);"
                f" duplicates: {len(ticks) - len(set(ticks))}"
            )
            if len(ticks) != len(set(ticks)):
                problems.append(f"{entry}: a tick has two jobs")
            if first_run != expected_first:
                problems.append(f"{entry}: first run lost ticks")
            if after != on_time_after:
                problems.append(f"{entry}: on-time ticks after the restart lost or added")
            got = [job["tick"] for job in in_gap]
            shown = ran
            if entry == "none":
                if got or missed.get("dropped") != len(gap):
                    problems.append(f"none: missed ticks ran or were not logged: {shown}")
            elif entry == "latest":
                if got != gap[-1:] or not all(job["catch_up"] for job in in_gap):
                    problems.append(
                        f"latest: expected only {gap[-1]:%H:%M:%S}, got {shown} (the second"
                        f" daemon was ready {ready_s:.2f} s after its launch on a tick of `latest`)"
                    )
                if missed.get("dropped") != len(gap) - 1:
                    problems.append(f"latest: cron.missed {missed}")
            else:
                keys = [job["key"] for job in in_gap]
                want = [f"cron:{found[0]['cron']}:{t.isoformat()}" for t in gap]
                if got != gap or not all(job["catch_up"] for job in in_gap) or keys != want:
                    problems.append(f"all: expected each of {len(gap)}, got {shown} {keys}")
        assert len(scheduled("latest", ledger["latest"], up_since)) >= 2
        assert not problems, problems
    finally:
        for daemon in daemons:
            await daemon.kill()
        await conn.close()
