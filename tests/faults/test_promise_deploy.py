"""Rolling deploys and reloads (issue 11, cases 2 and 3; SPEC 5): a node claims only the
jobs of workers it knows, so jobs of a trigger some node does not know wait for one that
does; removing a trigger from a configuration leaves its jobs waiting (only `state:
deleted` cancels them); moving a trigger to another queue moves its waiting jobs there."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.cluster import Cluster, config
from tests.faults.daemon import poll

pytestmark = pytest.mark.faults


@pytest.fixture
async def cluster(database_url: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(database_url, tmp_path)
    await c.setup()
    try:
        yield c
    finally:
        await c.close()


async def done_count(cluster: Cluster, kind: str) -> int:
    return int(
        await cluster.conn.fetchval(
            "SELECT count(*) FROM public.items WHERE done AND kind = $1", kind
        )
    )


async def test_rolling_deploy_runs_every_job_on_a_node_that_knows_it(cluster: Cluster) -> None:
    """Two daemons share the queue `work`: the old configuration (B) knows trigger t1, the
    new one (A) also t2. 30 t2 jobs and 300 t1 jobs drain: every t2 job runs on A and
    completes, none is discarded or even attempted by B (before: 27 of 30 were discarded
    by B with "no worker registered"); t1 jobs run on both."""
    old = config(cluster.url, {"t1": {"kind": "a", "sleep_s": 0.02}})
    new = config(
        cluster.url, {"t1": {"kind": "a", "sleep_s": 0.02}, "t2": {"kind": "b", "sleep_s": 0.02}}
    )
    b = await cluster.start(old)
    a = await cluster.start(new)  # started last: the SQL API's registry knows t2
    assert await cluster.enqueue("t2", 1001, 1030, kind="b") == 30
    assert await cluster.enqueue("t1", 1, 300) == 300

    async def all_done() -> bool:
        return await done_count(cluster, "a") + await done_count(cluster, "b") == 330

    await poll(all_done, 60, "every item done")
    nodes = dict(
        await cluster.conn.fetch(
            "SELECT worker, array_agg(DISTINCT node) FROM public.executions e"
            " JOIN jobd.jobs j ON j.id = e.job_id GROUP BY 1"
        )
    )
    assert nodes["items.t2"] == [a.node_id]
    assert set(nodes["items.t1"]) == {a.node_id, b.node_id}
    attempted_by_b = await cluster.conn.fetchval(
        "SELECT count(*) FROM jobd.jobs WHERE worker = 'items.t2' AND errors <> '{}'"
    )
    assert attempted_by_b == 0
    await cluster.check_each_item_once(330)
    assert await a.stop() == 0 and await b.stop() == 0


async def test_a_reload_that_removes_a_trigger_keeps_its_jobs_waiting(cluster: Cluster) -> None:
    """A daemon has t2 jobs waiting (its queue limit 1, each job 0.3 s); SIGHUP with a
    configuration without t2: the jobs stay `available`, none is discarded or cancelled
    (before: every waiting one was discarded), and `jobd status` lists them as waiting for
    a node that runs items.t2; a SIGHUP that brings t2 back runs them all."""
    queues = "{work: 5, slow: 1}"
    both = config(
        cluster.url,
        {"t1": {"kind": "a"}, "t2": {"kind": "b", "queue": "slow", "sleep_s": 0.3}},
        queues=queues,
    )
    daemon = await cluster.start(both)
    assert await cluster.enqueue("t2", 1, 20, kind="b") == 20
    await poll(lambda: done_count(cluster, "b"), 10, "t2 started")

    path = cluster.tmp_path / "jobd0.yaml"
    path.write_text(config(cluster.url, {"t1": {"kind": "a"}}, queues=queues))
    mark = len(daemon.events)
    daemon.send(signal.SIGHUP)
    await daemon.wait_event("daemon.reloaded", after=mark)
    waiting = await cluster.conn.fetchval(
        "SELECT count(*) FROM jobd.jobs WHERE worker = 'items.t2' AND state = 'available'"
    )
    assert waiting > 10, waiting
    await asyncio.sleep(2.0)  # deliberately: nothing may happen to them meanwhile
    shown = await jobd_status(path)  # the operator sees why they wait
    assert shown["waiting_for_worker"] == [{"queue": "slow", "worker": "items.t2", "jobs": waiting}]
    states = await cluster.states()
    assert "discarded" not in states and "cancelled" not in states, states
    assert (
        await cluster.conn.fetchval(
            "SELECT count(*) FROM jobd.jobs WHERE worker = 'items.t2' AND state = 'available'"
        )
        == waiting
    )

    path.write_text(both)
    mark = len(daemon.events)
    daemon.send(signal.SIGHUP)
    await daemon.wait_event("daemon.reloaded", after=mark)
    await poll(lambda: _equals(done_count(cluster, "b"), 20), 30, "every t2 item done")
    await cluster.check_each_item_once(20)
    print(f"\n{waiting} t2 jobs waited through the reload without t2, then ran")
    assert await daemon.stop() == 0


async def jobd_status(config_path: Path) -> dict[str, Any]:
    """`jobd status --json` as an operator runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobd",
        "status",
        "--json",
        "-c",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    result: dict[str, Any] = json.loads(out)
    return result


async def _equals(value: object, expected: int) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_a_reload_that_moves_a_trigger_moves_its_waiting_jobs(cluster: Cluster) -> None:
    """A trigger's jobs wait in queue `old` (limit 1, 0.3 s per job); SIGHUP with the
    trigger in queue `new` (and `old` gone): its waiting jobs move to `new` and all run
    (before: they stayed in `old`, which no producer served, and their unique keys kept the
    rows from ever being enqueued again). Afterwards the rows can be enqueued again."""
    before = config(cluster.url, {"t": {"queue": "old", "sleep_s": 0.3}}, queues="{old: 1, new: 5}")
    daemon = await cluster.start(before)
    assert await cluster.enqueue("t", 1, 20) == 20
    await poll(lambda: done_count(cluster, "a"), 10, "the first job done")

    path = cluster.tmp_path / "jobd0.yaml"
    path.write_text(config(cluster.url, {"t": {"queue": "new", "sleep_s": 0.3}}, queues="{new: 5}"))
    mark = len(daemon.events)
    daemon.send(signal.SIGHUP)
    await daemon.wait_event("daemon.reloaded", after=mark)
    moved = await daemon.wait_event("trigger.jobs_moved", after=mark)
    await poll(lambda: _equals(done_count(cluster, "a"), 20), 30, "every item done")
    queues = dict(await cluster.conn.fetch("SELECT queue, count(*) FROM jobd.jobs GROUP BY 1"))
    assert queues["new"] >= moved["count"] > 10, (queues, moved)
    await cluster.check_each_item_once(20)

    await cluster.conn.execute("UPDATE public.items SET done = false")
    again = await cluster.conn.fetchval(
        "SELECT cardinality(jobd.run_triggers('items', 't', (SELECT jsonb_agg("
        "jsonb_build_object('id', g)) FROM generate_series(1, 20) g)))"
    )
    assert again == 20, "no row's unique key may still be held"
    print(f"\n{moved['count']} waiting jobs moved from `old` to `new`")
    assert await daemon.stop() == 0
