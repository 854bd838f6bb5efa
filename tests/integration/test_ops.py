"""jobd.engine.ops against a real database: listing, showing, retrying, cancelling jobs, queue
depths, queue control and status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobd.engine import ops
from jobd.engine.insert import insert_jobs
from jobd.engine.jobs import JobSpec
from jobd.errors import UsageError
from jobd.sql.db import create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[Any]:
    """A jobd pool on the test's fresh database."""
    p = await create_pool(database_url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()


async def _job(pool: Any, state: str, **fields: Any) -> int:
    """Insert a job and force it into `state` (with an attempt count)."""
    async with pool.acquire() as conn:
        spec = JobSpec(worker=fields.pop("worker", "w"), queue=fields.pop("queue", "default"))
        (job_id,) = await insert_jobs(conn, [spec])
        await conn.execute(
            "UPDATE jobd.jobs SET state = $2::text::jobd.job_state, attempt = $3,"
            " max_attempts = $4 WHERE id = $1",
            job_id,
            state,
            fields.get("attempt", 0),
            fields.get("max_attempts", 20),
        )
    return job_id


async def test_list_and_get_filter_by_state_queue_worker(pool: Any) -> None:
    """Filters combine; newest first; get_job returns args/errors; unknown id gives None."""
    a = await _job(pool, "available", queue="q1", worker="wa")
    b = await _job(pool, "discarded", queue="q1", worker="wb")
    c = await _job(pool, "available", queue="q2", worker="wa")
    async with pool.acquire() as conn:
        assert [r["id"] for r in await ops.list_jobs(conn, "jobd")] == [c, b, a]
        assert [r["id"] for r in await ops.list_jobs(conn, "jobd", state="available")] == [c, a]
        assert [r["id"] for r in await ops.list_jobs(conn, "jobd", queue="q1")] == [b, a]
        rows = await ops.list_jobs(conn, "jobd", worker="wa", queue="q2")
        assert [r["id"] for r in rows] == [c]
        assert len(await ops.list_jobs(conn, "jobd", limit=1)) == 1
        job = await ops.get_job(conn, "jobd", b)
        assert job is not None and job["state"] == "discarded" and job["errors"] == []
        assert await ops.get_job(conn, "jobd", 999_999) is None
        with pytest.raises(UsageError, match="unknown job state"):
            await ops.list_jobs(conn, "jobd", state="done")


async def test_list_and_get_tell_a_handled_failure_from_a_success(pool: Any) -> None:
    """A completed job whose failure on_error handled (meta.handled) has outcome `handled`,
    not `succeeded`; discarded is `failed`, cancelled `cancelled`, a waiting job none."""
    plain = await _job(pool, "completed", attempt=1)
    handled = await _job(pool, "completed", attempt=1)
    failed = await _job(pool, "discarded", attempt=1)
    cancelled = await _job(pool, "cancelled")
    waiting = await _job(pool, "available")
    await pool.execute("UPDATE jobd.jobs SET meta = '{\"handled\": true}' WHERE id = $1", handled)
    expected = {
        plain: "succeeded",
        handled: "handled",
        failed: "failed",
        cancelled: "cancelled",
        waiting: None,
    }
    async with pool.acquire() as conn:
        listed = {r["id"]: r["outcome"] for r in await ops.list_jobs(conn, "jobd")}
        assert listed == expected
        for job_id, outcome in expected.items():
            job = await ops.get_job(conn, "jobd", job_id)
            assert job is not None and job["outcome"] == outcome


async def test_retry_raises_exhausted_max_attempts_and_keeps_attempt(pool: Any) -> None:
    """A discarded job with attempt == max_attempts becomes available, attempt kept,
    max_attempts one higher; available and executing jobs are not retried."""
    done = await _job(pool, "discarded", attempt=3, max_attempts=3)
    waiting = await _job(pool, "available")
    running = await _job(pool, "executing", attempt=1)
    async with pool.acquire() as conn:
        assert await ops.retry_job(conn, "jobd", done)
        job = await ops.get_job(conn, "jobd", done)
        assert job is not None
        assert (job["state"], job["attempt"], job["max_attempts"]) == ("available", 3, 4)
        assert job["discarded_at"] is None
        assert not await ops.retry_job(conn, "jobd", waiting)
        assert not await ops.retry_job(conn, "jobd", running)
        assert not await ops.retry_job(conn, "jobd", 999_999)


async def test_cancel_incomplete_jobs_only(pool: Any) -> None:
    """Available and executing jobs are cancelled (executing marked cancel_requested, an
    error entry recorded); completed ones are left alone."""
    waiting = await _job(pool, "available")
    running = await _job(pool, "executing", attempt=1)
    finished = await _job(pool, "completed", attempt=1)
    async with pool.acquire() as conn:
        assert await ops.cancel_job(conn, "jobd", waiting)
        assert await ops.cancel_job(conn, "jobd", running)
        assert not await ops.cancel_job(conn, "jobd", finished)
        job = await ops.get_job(conn, "jobd", running)
        assert job is not None and job["state"] == "cancelled"
        assert job["meta"] == {"cancel_requested": True}
        assert job["errors"][0]["error"] == "cancelled by operator"
        other = await ops.get_job(conn, "jobd", waiting)
        assert other is not None and "cancel_requested" not in other["meta"]


async def test_queue_depths_control_and_status(pool: Any) -> None:
    """Depths count by queue and state; pause/scale persist in the queues table and show
    in list_queues; status has nodes, leader and depths."""
    await _job(pool, "available", queue="mail")
    await _job(pool, "available", queue="mail")
    await _job(pool, "discarded", queue="mail")
    await ops.pause_queue(pool, "jobd", "mail")
    await ops.scale_queue(pool, "jobd", "mail", 7)
    async with pool.acquire() as conn:
        assert await ops.queue_depths(conn, "jobd") == {"mail": {"available": 2, "discarded": 1}}
        queues = await ops.list_queues(conn, "jobd", {"default": 10})
        assert [q["name"] for q in queues] == ["default", "mail"]
        assert queues[1]["paused"] and queues[1]["limit"] == 7
        assert queues[0] == {
            "name": "default",
            "paused": False,
            "limit": 10,
            "global_limit": None,
            "depth": {},
        }
        await conn.execute("INSERT INTO jobd.nodes (id, name) VALUES ('n1', 'host')")
        await conn.execute(
            "INSERT INTO jobd.leader (node_id, expires_at) VALUES ('n1', now() + interval '1 min')"
        )
        result = await ops.status(conn, "jobd")
    assert result["leader"]["node_id"] == "n1"
    assert result["nodes"][0]["id"] == "n1" and result["nodes"][0]["leader"] is True
    assert result["nodes"][0]["heartbeat_age_s"] >= 0
    assert result["queue_settings"]["mail"]["paused"] is True
    await ops.resume_queue(pool, "jobd", "mail")
    with pytest.raises(UsageError):
        await ops.scale_queue(pool, "jobd", "mail", 0)
