"""One scheduler run over 200,000 rows (50,000 matching): exactly 50,000 jobs, each row
once, memory independent of the row count, nothing enqueued while they wait."""

from __future__ import annotations

import tracemalloc
from typing import Any

from jobd.triggers.scheduler import run_scheduler
from tests.integration.triggers.conftest import Build

BODY = """
resources:
  events:
    table: events
    actions: {work: {python: "tests.integration.triggers.actions:record"}}
    triggers:
      process: {action: work, where: "kind = 'hit' AND handled IS NOT TRUE"}
"""


async def _rows(pool: Any, n: int) -> None:
    await pool.execute("TRUNCATE events; TRUNCATE jobd.jobs")
    await pool.execute(
        "INSERT INTO events SELECT g, CASE WHEN g % 4 = 0 THEN 'hit' ELSE 'miss' END, NULL"
        " FROM generate_series(1, $1::int) g",
        n,
    )
    await pool.execute("ANALYZE events")


async def _peak_bytes(rt: Any) -> tuple[int, Any]:
    res = rt.spec.resources["events"]
    tracemalloc.start()
    try:
        result = await run_scheduler(rt.deps, res, res.triggers["process"])
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()


async def test_200k_rows_50k_matching(build: Build, pool: Any) -> None:
    """Exactly one job per matching row; Python's peak allocation during the run does not
    grow with the rows (the same for 20,000 and 200,000 rows, and far below their size);
    a second run while the jobs wait enqueues none."""
    rt = await build(
        BODY, "CREATE TABLE events (id bigint PRIMARY KEY, kind text, handled boolean);"
    )
    await _rows(pool, 20_000)
    small_peak, small = await _peak_bytes(rt)
    assert small.enqueued == 5_000
    await _rows(pool, 200_000)
    peak, result = await _peak_bytes(rt)
    assert (result.scanned, result.enqueued) == (50_000, 50_000)
    # Pages of 1,000, 2,000, 4,000, 8,000 and 16,000 rows, 16,000 again, then 3,000 (short).
    assert result.pages == 7
    stats = await pool.fetchrow(
        "SELECT count(*) AS jobs, count(DISTINCT args->'pk') AS rows,"
        " bool_and((args->'pk'->>'id')::bigint % 4 = 0) AS all_match FROM jobd.jobs"
    )
    assert (stats["jobs"], stats["rows"], stats["all_match"]) == (50_000, 50_000, True)
    assert peak < 1_000_000, peak  # 50,000 rows would be several MB as Python objects
    assert peak < small_peak * 2 + 200_000, (peak, small_peak)
    again = await run_scheduler(
        rt.deps, rt.spec.resources["events"], rt.spec.resources["events"].triggers["process"]
    )
    assert (again.scanned, again.enqueued) == (50_000, 0)
