"""`kill -9` with the settings a new user has (issue 11, case 1; SPEC 2 and 5): a crash is
not the action's failure. A rescued job goes back to `available` without using up its
attempt, so the default `max_attempts: 1` loses nothing; a job that keeps killing its node
is a final failure after `engine.max_rescues` (3) rescues, and its `on_error` runs. No
trigger job is discarded without `on_error` having run."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from tests.faults.cluster import HEADER, Cluster, config
from tests.faults.daemon import DaemonProc, poll
from tests.faults.inprocess import http_sink

pytestmark = pytest.mark.faults

HEARTBEAT_S = 1.0
# Dead after 3 missed beats; the leader's lifeline looks once per beat: kill + 4 beats.
RESCUE_BOUND_S = 4 * HEARTBEAT_S + 1.0


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(database_url, tmp_path)
    await c.setup()
    try:
        yield c
    finally:
        await c.close()


async def kill_a_busy_follower(cluster: Cluster, busy_after: int) -> tuple[DaemonProc, datetime]:
    """SIGKILL one daemon that is not the leader while it executes jobs (so the rescue,
    not a leader failover, is measured); returns it and the database time of the kill."""
    conn = cluster.conn
    await poll(lambda: conn.fetchval("SELECT count(*) > 0 FROM jobd.leader"), 10, "a leader")
    leader = await conn.fetchval("SELECT node_id FROM jobd.leader")
    victim = next(d for d in cluster.daemons if d.node_id != leader)

    async def busy() -> bool:
        return bool(
            await conn.fetchval(
                "SELECT count(*) FILTER (WHERE attempted_by = $1 AND state = 'executing') > 0"
                " AND count(*) FILTER (WHERE state = 'completed') >= $2 FROM jobd.jobs",
                victim.node_id,
                busy_after,
            )
        )

    await poll(busy, 30, "the victim executing jobs")
    killed_at: datetime = await conn.fetchval("SELECT clock_timestamp()")
    os.kill(victim.proc.pid, signal.SIGKILL)
    assert await victim.wait() == -signal.SIGKILL
    return victim, killed_at


async def rescue_delays(cluster: Cluster, killed_at: datetime) -> list[float]:
    """Seconds from the kill to each rescue; every rescued job rescued once, its attempt
    not counted."""
    rows = await cluster.conn.fetch(
        "SELECT (meta ->> 'rescued')::int AS times, attempt,"
        " (SELECT (e ->> 'at')::timestamptz FROM unnest(errors) e"
        "  WHERE e ->> 'kind' = 'rescued' LIMIT 1) AS rescued_at"
        " FROM jobd.jobs WHERE meta ? 'rescued'"
    )
    assert rows, "the victim had jobs in flight; they must have been rescued"
    assert all(row["times"] == 1 and row["attempt"] == 1 for row in rows), rows[:3]
    return [(row["rescued_at"] - killed_at).total_seconds() for row in rows]


async def test_kill_9_of_one_of_three_daemons_with_default_attempts(cluster: Cluster) -> None:
    """Three daemons drain 1,500 trigger jobs with the default max_attempts (1); one that is
    not the leader is killed with SIGKILL while it executes jobs. Every item ends done,
    each item's work committed exactly once, no two executions of an item overlapped, no
    job was discarded (before the fix: every job in flight on the victim was discarded as
    out of attempts, its row neither done nor failed), the rescued jobs were rescued once
    with their attempt not counted, within four heartbeats of the kill."""
    items = 1_500
    text = config(cluster.url, {"process": {"sleep_s": 0.02}})
    for _ in range(3):
        await cluster.start(text)
    assert await cluster.enqueue("process", 1, items) == items
    started = time.monotonic()
    _, killed_at = await kill_a_busy_follower(cluster, items // 10)

    async def all_done() -> bool:
        return bool(await cluster.conn.fetchval("SELECT bool_and(done) FROM public.items"))

    await poll(all_done, 90, "all items done")  # a bound, not a speed target
    await cluster.check_each_item_once(items)
    assert await cluster.states() == {"completed": items}
    delays = await rescue_delays(cluster, killed_at)
    print(
        f"\n{items} items in {time.monotonic() - started:.1f} s; {len(delays)} rescued "
        f"{min(delays):.2f}-{max(delays):.2f} s after the kill"
    )
    assert min(delays) > 0 and max(delays) <= RESCUE_BOUND_S, delays
    for daemon in cluster.daemons:
        if daemon.alive:
            assert await daemon.stop() == 0


HTTP_TRIGGER = """      call:
        action: call
        where: "NOT done AND NOT failed"
        scheduler_cron: false
        queue: work
        on_success: mark_done
        on_error: mark_failed
"""


async def test_kill_9_with_http_actions_in_flight(cluster: Cluster) -> None:
    """Three daemons call a loopback webhook (150 ms per request) for 300 rows with the
    default max_attempts; one daemon is killed mid-run with requests in flight. Every row
    ends done (on_success ran), none failed or discarded (before: the cut requests' jobs
    were discarded), the rescued jobs were rescued once within four heartbeats, and every
    row's request reached the sink at least once (a cut request may be sent again: at
    least once, each with the same Idempotency-Key)."""
    rows = 300
    seen: Counter[int] = Counter()
    keys: dict[int, set[str]] = {}

    async def handler(request: web.Request) -> web.Response:
        item = int(request.match_info["tail"].rsplit("/", 1)[-1])
        seen[item] += 1
        keys.setdefault(item, set()).add(request.headers["Idempotency-Key"])
        await asyncio.sleep(0.15)
        return web.json_response({"ok": True})

    async with http_sink(handler) as sink:
        text = HEADER.format(url=cluster.url, queues="{work: 20}", admin="off")
        text = text.replace(
            "      work: {python:",
            f'      call: {{http: {{url: "{sink}/items/{{record.id}}", timeout: 10s}}}}\n'
            "      work: {python:",
        )
        for _ in range(3):
            await cluster.start(text + HTTP_TRIGGER)
        await cluster.conn.execute(
            "INSERT INTO public.items (id) SELECT generate_series(1, $1)", rows
        )
        enqueued = await cluster.conn.fetchval(
            "SELECT cardinality(jobd.run_triggers('items', 'call', (SELECT jsonb_agg("
            "jsonb_build_object('id', g)) FROM generate_series(1, $1) g)))",
            rows,
        )
        assert enqueued == rows
        _, killed_at = await kill_a_busy_follower(cluster, rows // 10)

        async def all_done() -> bool:
            return bool(await cluster.conn.fetchval("SELECT bool_and(done) FROM public.items"))

        await poll(all_done, 90, "all rows done")
    assert await cluster.states() == {"completed": rows}
    assert await cluster.conn.fetchval("SELECT count(*) FROM public.items WHERE failed") == 0
    delays = await rescue_delays(cluster, killed_at)
    assert set(seen) == set(range(1, rows + 1))
    assert all(len(k) == 1 for k in keys.values()), "a retry must reuse its Idempotency-Key"
    print(
        f"\n{rows} rows; {len(delays)} rescued {min(delays):.2f}-{max(delays):.2f} s after "
        f"the kill; {sum(1 for n in seen.values() if n > 1)} requests sent twice"
    )
    assert max(delays) <= RESCUE_BOUND_S, delays


async def test_a_job_that_keeps_killing_its_node_ends_in_on_error(cluster: Cluster) -> None:
    """A row whose action kills its daemon (SIGKILL) every time is rescued three times
    (engine.max_rescues), each time without using up its one attempt; the fourth claim ends
    it as a final failure: on_error marks the row failed and the job completes with the
    error kept (`handled`). Dead daemons are replaced as they die. (The other rows are
    done first: a job in flight on a node that dies is rescued too, and one rescued more
    than max_rescues times is a final failure whoever killed its node.) Before: the first
    rescue discarded the job without on_error."""
    text = config(cluster.url, {"process": {"kind": "a"}, "killer": {"kind": "k", "action": "die"}})
    for _ in range(2):
        await cluster.start(text)
    await cluster.enqueue("process", 1, 50)

    async def others_done() -> bool:
        return bool(
            await cluster.conn.fetchval("SELECT count(*) = 50 FROM public.items WHERE done")
        )

    await poll(others_done, 30, "the other rows done")
    assert await cluster.enqueue("killer", 1000, 1000, kind="k") == 1
    deadline = time.monotonic() + 90
    deaths = 0
    while not await cluster.conn.fetchval("SELECT failed FROM public.items WHERE id = 1000"):
        assert time.monotonic() < deadline, "the killer row never reached on_error"
        for daemon in list(cluster.daemons):
            if not daemon.alive and daemon.proc.returncode == -signal.SIGKILL:
                cluster.daemons.remove(daemon)
                deaths += 1
                await cluster.start(text, ready=False)  # it may die before it says ready
        await asyncio.sleep(0.2)
    job = await cluster.conn.fetchrow(
        "SELECT state::text AS state, meta ->> 'handled' AS handled, attempt,"
        " (meta ->> 'rescued')::int AS rescued, errors[cardinality(errors)] ->> 'kind' AS kind,"
        " errors[cardinality(errors)] ->> 'error' AS error"
        " FROM jobd.jobs WHERE worker = 'items.killer'"
    )
    assert job["state"] == "completed" and job["handled"] == "true"
    assert job["rescued"] == 4 and job["attempt"] == 1
    assert job["kind"] == "rescued" and "more than engine.max_rescues = 3" in job["error"]
    assert deaths == 4

    async def others_done() -> bool:
        return bool(
            await cluster.conn.fetchval("SELECT count(*) = 50 FROM public.items WHERE done")
        )

    await poll(others_done, 30, "the other rows done")
    print(f"\nthe killer row killed {deaths} daemons, then on_error ran")
