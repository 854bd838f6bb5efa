"""The scheduler: set-based enqueue of one job per matching row (SPEC 1.2 "Scheduler")."""

from __future__ import annotations

from typing import Any

from jobd.triggers.runtime import TriggerRuntime
from jobd.triggers.scheduler import run_scheduler
from tests.integration.triggers import actions
from tests.integration.triggers.conftest import Build, jobs, run_all

ORDERS = """
CREATE TABLE orders (
  id bigint PRIMARY KEY, status text, processed boolean, note text, org text,
  payload jsonb, inserted_at timestamptz NOT NULL DEFAULT now(), rank int
);
"""


def config(trigger: str, *, actions_extra: str = "", resource_extra: str = "") -> str:
    return f"""
resources:
  orders:
    table: orders
{resource_extra}
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
      done: {{update: {{set: {{processed: true}}}}}}
{actions_extra}
    triggers:
      process:
{trigger}
"""


async def scan(rt: TriggerRuntime, resource: str = "orders", trigger: str = "process") -> Any:
    res = rt.spec.resources[resource]
    return await run_scheduler(rt.deps, res, res.triggers[trigger])


async def test_enqueues_matching_rows_once_and_runs_them(build: Build, pool: Any) -> None:
    """Matching rows get one job each with the documented args and key; the worker runs the
    action and on_success; a second scan while jobs wait enqueues nothing."""
    rt = await build(
        config(
            "        action: work\n        where: \"processed IS NOT TRUE AND status = 'new'\"\n"
            "        on_success: done\n        action_input: {x: 1}\n        extra_args: {e: 2}"
        ),
        ORDERS + "INSERT INTO orders (id, status) SELECT g, CASE WHEN g % 2 = 0 THEN 'new'"
        " ELSE 'old' END FROM generate_series(1, 10) g;",
    )
    result = await scan(rt)
    assert (result.scanned, result.enqueued) == (5, 5)
    assert (await scan(rt)).enqueued == 0
    rows = await jobs(pool, "orders.process")
    assert [r["args"]["pk"] for r in rows] == [{"id": i} for i in (2, 4, 6, 8, 10)]
    assert rows[0]["args"] == {
        "pk": {"id": 2},
        "tenant": None,
        "actor": None,
        "input": {"x": 1},
        "extra": {"e": 2},
    }
    assert rows[0]["uniq_key"] == "orders.process::[2]"
    assert (rows[0]["priority"], rows[0]["queue"], rows[0]["max_attempts"]) == (
        2,
        "orders_process",
        1,
    )
    counts = await run_all(rt)
    assert counts["completed"] == 5
    assert sorted(c["pk"]["id"] for c in actions.CALLS) == [2, 4, 6, 8, 10]
    assert await pool.fetchval("SELECT count(*) FROM orders WHERE processed") == 5
    assert (await scan(rt)).enqueued == 0  # no longer matching


async def test_where_with_now_interval_json_and_null(build: Build, pool: Any) -> None:
    """A where using now(), an interval, a JSON operator and NULL handling selects exactly
    the rows Postgres says match."""
    where = (
        "inserted_at < now() - interval '1 hour' AND payload->>'kind' = 'a'"
        " AND (note IS NULL OR note <> 'skip') AND status IS DISTINCT FROM 'done'"
    )
    rt = await build(
        config(f'        action: work\n        where: "{where}"'),
        ORDERS
        + """
        INSERT INTO orders (id, status, note, payload, inserted_at) VALUES
          (1, NULL,   NULL,   '{"kind": "a"}', now() - interval '2 hours'),
          (2, 'new',  'skip', '{"kind": "a"}', now() - interval '2 hours'),
          (3, 'new',  'ok',   '{"kind": "b"}', now() - interval '2 hours'),
          (4, 'new',  'ok',   '{"kind": "a"}', now()),
          (5, 'done', NULL,   '{"kind": "a"}', now() - interval '3 hours'),
          (6, 'new',  'ok',   '{"kind": "a"}', now() - interval '5 hours'),
          (7, 'new',  NULL,   NULL,            now() - interval '5 hours');
        """,
    )
    await scan(rt)
    assert [r["args"]["pk"]["id"] for r in await jobs(pool)] == [1, 6]


async def test_record_limit_counts_only_new_jobs(build: Build, pool: Any) -> None:
    """record_limit caps the new jobs of one run; rows that already have a job do not use
    up the limit, so the next run continues with the next rows."""
    rt = await build(
        config("        action: work\n        record_limit: 3\n        stream_batch_size: 2"),
        ORDERS + "INSERT INTO orders (id) SELECT generate_series(1, 10);",
    )
    assert (await scan(rt)).enqueued == 3
    assert (await scan(rt)).enqueued == 3
    ids = [r["args"]["pk"]["id"] for r in await jobs(pool)]
    assert ids == [1, 2, 3, 4, 5, 6]


async def test_record_limit_skips_rows_held_by_completed_jobs(build: Build, pool: Any) -> None:
    """With trigger_once, rows whose completed job still holds their key neither get a job
    nor use up record_limit: the next run enqueues the next rows."""
    rt = await build(
        config(
            "        action: work\n        trigger_once: true\n        record_limit: 2\n"
            "        stream_batch_size: 1"
        ),
        ORDERS + "INSERT INTO orders (id) SELECT generate_series(1, 6);",
    )
    assert (await scan(rt)).enqueued == 2
    assert (await run_all(rt))["completed"] >= 2
    assert (await scan(rt)).enqueued == 2
    ids = [r["args"]["pk"]["id"] for r in await jobs(pool, "orders.process")]
    assert ids == [1, 2, 3, 4]


async def test_keyset_pages_grow_after_a_first_page_of_stream_batch_size(
    build: Build, pool: Any
) -> None:
    """In primary-key order the scan runs one statement per keyset page: the first of
    stream_batch_size rows, then each twice the last up to 16 times the first (1, 2, 4, 8,
    16, 16 for 40 rows); every matching row is enqueued once, jobs in key order."""
    rt = await build(
        config('        action: work\n        where: "id % 3 = 0"\n        stream_batch_size: 1'),
        ORDERS + "INSERT INTO orders (id) SELECT generate_series(1, 120);",
    )
    result = await scan(rt)
    assert (result.scanned, result.enqueued, result.pages) == (40, 40, 6)
    assert [r["args"]["pk"]["id"] for r in await jobs(pool)] == list(range(3, 121, 3))


async def test_descending_key_pages_keep_their_order(build: Build, pool: Any) -> None:
    """A sort of the key in descending order pages backwards through the key; the jobs
    follow that order across pages of growing size, and a second run enqueues none."""
    rt = await build(
        config("        action: work\n        sort: [id desc]\n        stream_batch_size: 2"),
        ORDERS + "INSERT INTO orders (id) SELECT generate_series(1, 25);",
    )
    result = await scan(rt)
    assert (result.scanned, result.enqueued, result.pages) == (25, 25, 4)  # 2, 4, 8, 16
    assert [r["args"]["pk"]["id"] for r in await jobs(pool)] == list(range(25, 0, -1))
    again = await scan(rt)
    assert (again.scanned, again.enqueued) == (25, 0)


async def test_sort_orders_jobs_and_limit(build: Build, pool: Any) -> None:
    """A custom sort (descending, from the read or the trigger) decides which rows a
    record_limit picks and the job order, in a single statement."""
    rt = await build(
        config(
            "        action: work\n        read: by_rank\n        record_limit: 3",
            resource_extra="    reads:\n      by_rank: {sort: [rank desc]}",
        ),
        ORDERS
        + "INSERT INTO orders (id, rank) SELECT g, (g * 7) % 10 FROM generate_series(1, 9) g;",
    )
    result = await scan(rt)
    assert result.pages == 1
    ranks = [
        await pool.fetchval("SELECT rank FROM orders WHERE id = $1", r["args"]["pk"]["id"])
        for r in await jobs(pool)
    ]
    assert ranks == [9, 8, 7]


async def test_composite_primary_key(build: Build, pool: Any) -> None:
    """A composite primary key (from the catalog) pages by both columns, keys and args
    hold both values, and the worker re-reads the right row."""
    rt = await build(
        """
resources:
  lines:
    table: lines
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
      done: {update: {set: {done: true}}}
    triggers:
      process: {action: work, where: "done IS NOT TRUE", on_success: done, stream_batch_size: 3}
""",
        "CREATE TABLE lines (order_id int, line text, done boolean, PRIMARY KEY (order_id, line));"
        "INSERT INTO lines SELECT o, l, NULL FROM generate_series(1, 3) o,"
        " unnest(ARRAY['a', 'b']) l;",
    )
    result = await scan(rt, "lines")
    assert (result.enqueued, result.pages) == (6, 2)  # pages of 3 and 6 rows
    rows = await jobs(pool)
    assert rows[0]["uniq_key"] == 'lines.process::[1, "a"]'
    assert rows[1]["args"]["pk"] == {"order_id": 1, "line": "b"}
    await run_all(rt)
    assert await pool.fetchval("SELECT count(*) FROM lines WHERE done") == 6
    assert {(c["pk"]["order_id"], c["pk"]["line"]) for c in actions.CALLS} == {
        (o, ln) for o in (1, 2, 3) for ln in "ab"
    }


async def test_trigger_once_blocks_after_completion(build: Build, pool: Any) -> None:
    """With trigger_once a completed job keeps blocking its row while retained; without
    it, a row that still matches gets a new job after completion."""
    rt = await build(
        config("        action: work\n        trigger_once: true").replace(
            "    triggers:\n", "    triggers:\n      again: {action: work}\n"
        ),
        ORDERS + "INSERT INTO orders (id) VALUES (1);",
    )
    assert (await scan(rt)).enqueued == 1
    assert (await scan(rt, trigger="again")).enqueued == 1
    await run_all(rt)
    assert (await scan(rt)).enqueued == 0
    assert (await scan(rt, trigger="again")).enqueued == 1


async def test_discard_cooldown_stops_the_retry_loop(build: Build, pool: Any) -> None:
    """A row whose job was discarded is not enqueued again while discard_cooldown runs; once
    the hold expires (the stager's sweep clears it) it is."""
    rt = await build(
        config(
            "        action: work\n        action_input: {fail: true}\n        discard_cooldown: 1h"
        ),
        ORDERS + "INSERT INTO orders (id) VALUES (1);",
    )
    await scan(rt)
    counts = await run_all(rt)
    assert counts["discarded"] == 1
    assert (await scan(rt)).enqueued == 0
    await pool.execute("UPDATE jobd.jobs SET uniq_key = NULL")  # what the hold sweep does
    assert (await scan(rt)).enqueued == 1


async def test_race_with_a_completing_job(build: Build, pool: Any) -> None:
    """A scheduler run while a row's job executes enqueues nothing for it; a job enqueued
    from a stale scan after the row stopped matching is cancelled without calling the
    action: the action runs once for the row."""
    rt = await build(
        config(
            '        action: work\n        where: "processed IS NOT TRUE"\n'
            "        on_success: done\n        action_input: {gate: true}"
        ),
        ORDERS + "INSERT INTO orders (id) VALUES (1);",
    )
    import asyncio

    await scan(rt)
    running = asyncio.create_task(run_all(rt))
    await asyncio.wait_for(actions.STARTED.wait(), 10)
    assert (await scan(rt)).enqueued == 0  # the executing job holds the key
    actions.GATE.set()
    await running
    # A scan that read the row before the job completed, inserting after it did:

    assert await rt.enqueuer().run_trigger("orders", "process", {"id": 1}) is not None
    counts = await run_all(rt)
    assert counts["cancelled"] == 1
    assert len(actions.CALLS) == 1
    last = (await jobs(pool))[-1]
    assert last["state"] == "cancelled"
    assert "trigger_no_longer_applies" in last["errors"][-1]["error"]
