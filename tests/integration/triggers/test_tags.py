"""`tags:` on triggers and scheduled actions fill the jobs table's `tags` column of every
job they make, whichever path inserts it: the scheduler's scan, a change-data event (small
statement and expansion), the SQL functions (run_trigger, run_triggers, run_schedule, a
one-off event) and the cron's tick; scheduler and expansion jobs carry none."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from jobd.engine.insert import insert_jobs
from jobd.triggers.jobs import schedule_cron_entry, scheduler_job
from tests.integration.triggers.conftest import Build
from tests.integration.triggers.test_events import expand_only
from tests.integration.triggers.test_scheduler import scan

TAGS = ["billing", 'o\'brien "q"']

CONFIG = """
resources:
  orders:
    table: orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
    triggers:
      process:
        action: work
        where: "status = 'new'"
        scheduler_cron: "0 0 1 1 *"
        events: [insert]
        tags: [billing, "o'brien \\"q\\""]
    scheduled_actions:
      report: {action: work, cron: "@daily", tags: [reports]}
"""

TABLE = "CREATE TABLE orders (id bigint PRIMARY KEY, status text);"


async def tags_by_worker(pool: Any) -> dict[str, set[tuple[str, ...]]]:
    rows = await pool.fetch("SELECT worker, tags FROM jobd.jobs")
    found: dict[str, set[tuple[str, ...]]] = {}
    for row in rows:
        found.setdefault(row["worker"], set()).add(tuple(row["tags"]))
    return found


async def test_every_path_tags_the_jobs(build: Build, pool: Any) -> None:
    """The rows' jobs from the scan, a small event statement, an expanded one (1,001 rows)
    and the SQL functions carry the trigger's tags (a quote in one included); the
    schedule's runs (SQL function, one-off event, cron tick) carry its tags; the scheduler
    and expansion jobs carry none. The expansion logs trigger.events_expanded (its `change`
    key: an `event` key made the log call raise after the jobs were committed)."""
    rt = await build(CONFIG, TABLE)
    await pool.execute("ALTER TABLE orders DISABLE TRIGGER USER")
    await pool.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 3) g")
    await pool.execute("ALTER TABLE orders ENABLE TRIGGER USER")
    assert (await scan(rt)).enqueued == 3
    await pool.execute("INSERT INTO orders VALUES (4, 'new')")
    await pool.execute("INSERT INTO orders SELECT g, 'new' FROM generate_series(10, 1010) g")
    with capture_logs() as logs:
        await expand_only(rt)
    assert [e["change"] for e in logs if e["event"] == "trigger.events_expanded"] == ["insert"]
    await pool.execute("INSERT INTO orders VALUES (2000, 'old'), (2001, 'old')")
    await pool.execute("SELECT jobd.run_trigger('orders', 'process', '{\"id\": 2000}')")
    await pool.execute("SELECT jobd.run_triggers('orders', 'process', '[{\"id\": 2001}]')")
    await pool.execute("SELECT jobd.run_trigger('orders', 'process')")  # the scheduler
    await pool.execute("SELECT jobd.run_schedule('orders', 'report')")
    await pool.execute("SELECT jobd.run_schedule('orders', 'report', schedule_in => '1h')")
    orders = rt.spec.resources["orders"]
    entry = schedule_cron_entry(orders, orders.scheduled_actions["report"])
    assert entry is not None
    async with pool.acquire() as conn:
        await insert_jobs(conn, [entry.job, scheduler_job(orders.triggers["process"])])
    assert await tags_by_worker(pool) == {
        "orders.process": {tuple(TAGS)},
        "orders.process.scheduler": {()},
        "orders.process#events": {()},
        "orders.report": {("reports",)},
    }
    count = await pool.fetchval("SELECT count(*) FROM jobd.jobs WHERE worker = 'orders.process'")
    assert count == 3 + 1 + 1001 + 2
