"""SIGHUP and SIGTERM sent to a real daemon while it drains trigger jobs (SPEC sections 2
and 4: a reload drops no running job; a graceful stop exits 0 and leaves no job executing)."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import ITEMS_SQL, DaemonProc, add_items, items_config, poll

pytestmark = pytest.mark.faults


async def completed(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM jobd.jobs WHERE state = 'completed'"))


async def assert_each_item_once(conn: asyncpg.Connection, items: int) -> None:
    """Every job completed, every item done, exactly one committed execution per item."""
    states = dict(await conn.fetch("SELECT state::text, count(*) FROM jobd.jobs GROUP BY 1"))
    assert states == {"completed": items}, states
    assert await conn.fetchval("SELECT count(*) FROM public.items WHERE done") == items
    assert await conn.fetchval(
        "SELECT count(DISTINCT item_id) = count(*) FROM public.executions"
    ), "an item's work was committed twice"


async def test_sighup_mid_drain_keeps_every_job(database_url: str, tmp_path: Path) -> None:
    """While 2,000 jobs drain: a SIGHUP with a changed valid config starts the new
    generation and stops the old one without losing a job; a SIGHUP with an invalid file is
    rejected and the daemon keeps running. At the end every job completed exactly once, none
    is executing, and SIGTERM exits 0."""
    items = 2_000
    config = tmp_path / "jobd.yaml"
    config.write_text(items_config(database_url, limit=10, sleep_s=0.01))
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(ITEMS_SQL)
        daemon = await DaemonProc.start(config, tmp_path / "daemon.log")
        await daemon.ready()
        assert await add_items(conn, 1, items) == items
        await poll(lambda: _more_than(conn, items // 10), 30, "drain started")

        config.write_text(items_config(database_url, limit=6, sleep_s=0.01))
        mark = len(daemon.events)
        daemon.send(signal.SIGHUP)
        await daemon.wait_event("daemon.reloaded", after=mark)

        config.write_text("version: 1\nqueues: {items: -3}\n")
        mark = len(daemon.events)
        daemon.send(signal.SIGHUP)
        rejected = await daemon.wait_event("daemon.reload_rejected", after=mark)
        assert rejected["problems"], rejected
        assert await completed(conn) < items, "the reloads should happen mid-drain"

        await poll(lambda: _more_than(conn, items - 1), 60, "all jobs completed")
        assert daemon.alive
        assert await daemon.stop() == 0
        await assert_each_item_once(conn, items)
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()


async def test_sigterm_mid_drain_exits_0_and_leaves_nothing_executing(
    database_url: str, tmp_path: Path
) -> None:
    """SIGTERM while ten 0.2 s jobs run with a 0.1 s shutdown_grace: the daemon exits 0,
    no job is left `executing` (the unfinished ones are back to `available`, their work
    rolled back). A second daemon then completes every job, each item's work exactly once."""
    items = 200
    config = tmp_path / "jobd.yaml"
    config.write_text(items_config(database_url, limit=10, sleep_s=0.2, grace="100ms"))
    conn = await asyncpg.connect(database_url)
    daemons: list[DaemonProc] = []
    try:
        await conn.execute(ITEMS_SQL)
        daemons.append(await DaemonProc.start(config, tmp_path / "first.log"))
        await daemons[0].ready()
        assert await add_items(conn, 1, items) == items

        async def busy() -> bool:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FILTER (WHERE state = 'executing') >= 5"
                    " AND count(*) FILTER (WHERE state = 'completed') >= 20 FROM jobd.jobs"
                )
            )

        await poll(busy, 30, "first daemon busy")
        assert await daemons[0].stop() == 0
        states = dict(await conn.fetch("SELECT state::text, count(*) FROM jobd.jobs GROUP BY 1"))
        assert "executing" not in states, states
        assert states.get("available", 0) > 0, states  # the stop came mid-drain

        daemons.append(await DaemonProc.start(config, tmp_path / "second.log"))
        await daemons[1].ready()
        await poll(lambda: _more_than(conn, items - 1), 60, "all jobs completed")
        assert await daemons[1].stop() == 0
        await assert_each_item_once(conn, items)
    finally:
        for daemon in daemons:
            await daemon.kill()
        await conn.close()


async def _more_than(conn: asyncpg.Connection, count: int) -> bool:
    return await completed(conn) > count
