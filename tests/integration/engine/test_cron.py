"""Cron: each tick enqueued exactly once across nodes and leader changes; overlap,
catch_up and timezones, driven through cron_once with an explicit `now`."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from jobd.engine.config import CronEntry, EngineConfig, new_node_id
from jobd.engine.cron import cron_once
from jobd.engine.jobs import JobSpec
from jobd.engine.leader import Leader
from jobd.engine.services import LeaderServices
from jobd.sql.db import create_pool
from tests.integration.engine.conftest import eventually

T0 = datetime(2024, 1, 1, 12, 0, 30, tzinfo=UTC)


def config_for(*entries: CronEntry, **kwargs: Any) -> EngineConfig:
    return EngineConfig(crons=entries, **kwargs)


def every_minute(name: str = "m", **kwargs: Any) -> CronEntry:
    return CronEntry(name=name, expression="* * * * *", job=JobSpec(worker="w"), **kwargs)


async def ticks(pool: Any, name: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT meta ->> 'cron_tick' FROM jobd.jobs WHERE meta ->> 'cron' = $1 ORDER BY id", name
    )
    return [row[0] for row in rows]


async def step(pool: Any, config: EngineConfig, now: datetime) -> int:
    async with pool.acquire() as conn:
        return await cron_once(conn, config, now)


async def test_first_sight_starts_at_now(pool: Any) -> None:
    """A new entry's ledger starts at `now`: no past tick is enqueued, the next one is."""
    config = config_for(every_minute(catch_up="all"))
    assert await step(pool, config, T0) == 0
    assert await pool.fetchval("SELECT last_tick FROM jobd.crons WHERE name = 'm'") == T0
    assert await step(pool, config, T0 + timedelta(seconds=31)) == 1
    assert await ticks(pool, "m") == ["2024-01-01T12:01:00+00:00"]


async def test_concurrent_steps_enqueue_each_tick_once(pool: Any) -> None:
    """Three connections running the same cron step at once (no leadership involved)
    enqueue each tick exactly once: the ledger row lock serializes them."""
    config = config_for(every_minute(overlap="allow", catch_up="all"))
    await step(pool, config, T0)
    later = T0 + timedelta(minutes=5)
    counts = await asyncio.gather(*(step(pool, config, later) for _ in range(3)))
    assert sorted(counts) == [0, 0, 5]
    assert len(set(await ticks(pool, "m"))) == 5


async def test_overlap_skip_versus_allow(pool: Any) -> None:
    """skip: no new job while the previous one is incomplete, the tick is consumed anyway;
    after the previous completes, the next tick enqueues. allow: every tick enqueues."""
    config = config_for(every_minute("s"), every_minute("a", overlap="allow"))
    await step(pool, config, T0)

    def at(minute: int) -> datetime:  # 5 s after the tick of 12:<minute>
        return datetime(2024, 1, 1, 12, minute, 5, tzinfo=UTC)

    assert await step(pool, config, at(1)) == 2  # 12:01 for both
    assert await step(pool, config, at(2)) == 1  # 12:02: only allow
    assert await ticks(pool, "s") == ["2024-01-01T12:01:00+00:00"]
    await pool.execute(  # complete the skip job the way an ack does (key released)
        "UPDATE jobd.jobs SET state = 'completed', completed_at = now(), uniq_key = NULL "
        "WHERE meta ->> 'cron' = 's'"
    )
    assert await step(pool, config, at(3)) == 2
    assert await ticks(pool, "s") == ["2024-01-01T12:01:00+00:00", "2024-01-01T12:03:00+00:00"]
    assert len(await ticks(pool, "a")) == 3
    keys = {row[0] for row in await pool.fetch("SELECT uniq_key FROM jobd.jobs")}
    assert keys == {None, "cron:s"}


async def test_catch_up_after_downtime(pool: Any) -> None:
    """With the ledger set back an hour (simulated downtime): none enqueues nothing,
    latest enqueues the newest missed tick, all enqueues each tick in the window; every
    ledger ends at the newest tick."""
    entries = [
        every_minute("none", catch_up="none", overlap="allow"),
        every_minute("latest", catch_up="latest", overlap="allow"),
        every_minute("all", catch_up="all", overlap="allow", catch_up_window_s=600),
    ]
    config = config_for(*entries)  # grace = 2 * lease_s = 30 s
    await step(pool, config, T0)
    await pool.execute("UPDATE jobd.crons SET last_tick = last_tick - interval '1 hour'")
    now = T0 + timedelta(minutes=1, seconds=15)  # 12:01:45: the 12:01 tick is 45 s old
    assert await step(pool, config, now) == 0 + 1 + 10
    assert await ticks(pool, "none") == []
    assert await ticks(pool, "latest") == ["2024-01-01T12:01:00+00:00"]
    caught = await ticks(pool, "all")
    assert caught[0] == "2024-01-01T11:52:00+00:00" and caught[-1] == "2024-01-01T12:01:00+00:00"
    lasts = {r[0] for r in await pool.fetch("SELECT last_tick FROM jobd.crons")}
    assert lasts == {datetime(2024, 1, 1, 12, 1, tzinfo=UTC)}


async def test_timezone_of_the_entry(pool: Any) -> None:
    """'0 9 * * *' in Europe/Berlin fires at 07:00 UTC in summer; the same in UTC does not."""
    job = JobSpec(worker="w")
    berlin = CronEntry("berlin", "0 9 * * *", job, timezone="Europe/Berlin")
    plain = CronEntry("utc", "0 9 * * *", job)
    config = config_for(berlin, plain)
    await step(pool, config, datetime(2024, 7, 10, 6, 59, 59, tzinfo=UTC))
    assert await step(pool, config, datetime(2024, 7, 10, 7, 0, 1, tzinfo=UTC)) == 1
    assert await ticks(pool, "berlin") == ["2024-07-10T07:00:00+00:00"]


async def test_three_nodes_every_second_exactly_once(database_url: str) -> None:
    """Three Leader/LeaderServices pairs on one database run a 6-field every-second cron for
    a few seconds, with a leader hand-over in the middle: every tick from the first to the
    last has exactly one job."""
    entry = CronEntry("sec", "* * * * * *", JobSpec(worker="w"), overlap="allow", catch_up="all")
    config = config_for(entry, lease_s=1.0, stage_interval_s=0.5, heartbeat_s=0.5)
    pools = [await create_pool(database_url, min_size=1, max_size=4) for _ in range(3)]
    stop = asyncio.Event()
    leaders = [Leader(p, config, new_node_id(f"c{i}")) for i, p in enumerate(pools)]
    leader_stops = [asyncio.Event() for _ in leaders]
    tasks = [
        asyncio.create_task(lead.run(s)) for lead, s in zip(leaders, leader_stops, strict=True)
    ]
    tasks += [
        asyncio.create_task(LeaderServices(p, config, lead).run(stop))
        for p, lead in zip(pools, leaders, strict=True)
    ]
    try:
        count = lambda: pools[0].fetchval("SELECT count(*) > 2 FROM jobd.jobs")  # noqa: E731
        await eventually(count, timeout_s=6)
        first = next(i for i, lead in enumerate(leaders) if lead.is_leader)
        leader_stops[first].set()  # hand over: the next leader continues from the ledger
        await leaders[first].release()
        before = await pools[0].fetchval("SELECT count(*) FROM jobd.jobs")
        later = lambda: pools[0].fetchval("SELECT count(*) > $1 + 2 FROM jobd.jobs", before)  # noqa: E731
        await eventually(later, timeout_s=6)
        assert any(lead.is_leader for i, lead in enumerate(leaders) if i != first)
    finally:
        stop.set()
        for s in leader_stops:
            s.set()
        await asyncio.gather(*tasks)
        for lead in leaders:
            await lead.release()
    found = await ticks(pools[0], "sec")
    for p in pools:
        await p.close()
    per_tick = Counter(found)
    assert set(per_tick.values()) == {1}
    stamps = sorted(datetime.fromisoformat(t) for t in per_tick)
    assert stamps == [stamps[0] + timedelta(seconds=i) for i in range(len(stamps))]
    assert len(stamps) >= 5
