"""A PostgreSQL restart (`pg_ctl restart -m fast`) under load, on a throwaway cluster the
test starts (SPEC section 2: a database restart loses no job; the daemon reconnects)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from tests.faults import throwaway_pg
from tests.faults.daemon import ITEMS_SQL, DaemonProc, add_items, items_config, poll

pytestmark = pytest.mark.faults

ITEMS = 3_000


@pytest.fixture
def cluster() -> throwaway_pg.ThrowawayCluster:
    reason = throwaway_pg.missing()
    if reason:
        pytest.skip(f"no throwaway Postgres cluster: {reason}")
    with throwaway_pg.ThrowawayCluster() as pg:
        yield pg  # type: ignore[misc]


async def test_postgres_restart_under_load(
    cluster: throwaway_pg.ThrowawayCluster, tmp_path: Path
) -> None:
    """A daemon drains 3,000 trigger jobs; mid-drain the server is restarted (fast mode:
    every connection is cut). The daemon process stays alive and is not restarted (one
    `daemon.ready` line), jobs keep completing after the restart, every job ends
    `completed` with each item's work committed exactly once, and SIGTERM exits 0."""
    config = tmp_path / "jobd.yaml"
    # One attempt only: a job cut off by the restart must not lose it (SPEC 2: a database
    # restart loses none), since the database failed, not the job.
    config.write_text(items_config(cluster.url, heartbeat="1s", max_attempts=1))
    conn = await asyncpg.connect(cluster.url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(ITEMS_SQL)
        daemon = await DaemonProc.start(config, tmp_path / "daemon.log")
        await daemon.ready()
        assert await add_items(conn, 1, ITEMS) == ITEMS

        async def done_count() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM public.items WHERE done"))

        await poll(lambda: _at_least(done_count, ITEMS // 10), 30, "drain started")
        await conn.close()
        await asyncio.to_thread(cluster.restart)
        conn = await asyncpg.connect(cluster.url)
        done_after_restart = await done_count()
        assert done_after_restart < ITEMS, "the restart should come mid-drain"
        assert daemon.alive

        try:
            await poll(lambda: _at_least(done_count, ITEMS), 90, "all items done after restart")
        except AssertionError as exc:  # say where the missing jobs are
            rows = await conn.fetch(
                "SELECT id, state::text, attempt, max_attempts, attempted_by, meta, errors"
                " FROM jobd.jobs WHERE state <> 'completed'"
            )
            raise AssertionError(f"{exc}; unfinished jobs: {[dict(r) for r in rows]}") from exc
        assert daemon.alive
        assert len(daemon.find("daemon.ready")) == 1
        assert await daemon.stop() == 0
        states = dict(await conn.fetch("SELECT state::text, count(*) FROM jobd.jobs GROUP BY 1"))
        assert states == {"completed": ITEMS}, states
        assert await conn.fetchval(
            "SELECT count(*) = $1 AND count(DISTINCT item_id) = $1 FROM public.executions", ITEMS
        ), "each item's work must be committed exactly once"
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()


def test_background_loops_survive_a_connection_found_mid_operation() -> None:
    """Regression (found by the restart test, about one run in six): after a restart asyncpg
    may report a pooled connection that died mid-statement as `InternalClientError` ("cannot
    switch to state 12; another operation (2) is in progress"). The engine's background
    loops (leader services, heartbeat, leader lease) must log and retry it like any lost
    connection; an uncaught one killed `jobd:leader-services` and stopped the daemon with
    exit 1. `jobd.sql.db.is_transient` already counts it as transient."""
    from jobd.sql.db import DB_ERRORS, is_transient

    lost = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert is_transient(lost)
    assert isinstance(lost, DB_ERRORS), "the engine's loops would die of a lost connection"


async def _at_least(count: object, target: int) -> bool:
    return bool(await count() >= target)  # type: ignore[operator]
