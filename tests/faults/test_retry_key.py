"""Issue 11, case 10: `jobd jobs retry` (the real CLI) of a completed trigger job. A retried
job takes its row's unique key back, so it is refused while another job holds the key
(the row would have two incomplete jobs), and once retried it blocks a new job for its
row as any waiting job does."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from tests.faults.daemon import ITEMS_SQL, DaemonProc, add_items
from tests.faults.edge_daemon import jobd_code, run_cli, settle, start_daemon, states

pytestmark = pytest.mark.faults

# Defaults everywhere; the trigger has no `where` and no on_success, so a row still
# matches after its job completed and may get a new job; the scheduler is off so that the
# test makes every job itself.
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "off"}}
resources:
  items:
    table: public.items
    actions:
      work: {{python: "tests.faults.actions:work"}}
    triggers:
      process: {{action: work, scheduler_cron: false}}
"""

RUN_TRIGGER = "SELECT jobd.run_trigger('items', 'process', jsonb_build_object('id', $1::int))"
INCOMPLETE = (
    "SELECT array_agg(id ORDER BY id) FROM jobd.jobs WHERE (args->'pk'->>'id')::int = $1"
    " AND state NOT IN ('completed', 'discarded', 'cancelled')"
)


async def test_retry_of_a_completed_job_takes_its_key_back(
    database_url: str, tmp_path: Path
) -> None:
    """Rows 1 and 2 each get a job that completes; the daemon stops. Row 1 then gets a new
    job (`jobd.run_trigger`): `jobd jobs retry` of row 1's completed job exits 2 with a
    message naming that new job, and row 1 still has exactly one incomplete job. Row 2 has
    no other job: the retry exits 0, the retried job is `available` with its unique key,
    and `jobd.run_trigger` for row 2 returns NULL (no second job). A daemon started again
    then completes both waiting jobs, and each row has no incomplete job left."""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=database_url))
    conn = await asyncpg.connect(database_url)
    daemons: list[DaemonProc] = []
    try:
        await conn.execute(ITEMS_SQL)
        daemons.append(await start_daemon(config, tmp_path / "first.log"))
        print(f"\njobd code: {await jobd_code(daemons[0])}")
        await daemons[0].ready()
        assert await add_items(conn, 1, 2) == 2

        async def both_completed() -> bool:
            return await states(conn) == {"completed": 2}

        assert await settle(both_completed, 15), await states(conn)
        assert await daemons[0].stop() == 0
        first = dict(await conn.fetch("SELECT (args->'pk'->>'id')::int, id FROM jobd.jobs"))

        newer = await conn.fetchval(RUN_TRIGGER, 1)
        assert newer is not None
        refused = await run_cli("jobs", "retry", str(first[1]), "-c", str(config))
        row1_incomplete = await conn.fetchval(INCOMPLETE, 1)
        row1_old_state = await conn.fetchval(
            "SELECT state::text FROM jobd.jobs WHERE id = $1", first[1]
        )
        print(
            f"cli jobd code: {refused.jobd_file}\n"
            f"row 1: job {first[1]} completed, new job {newer} waiting; `jobs retry {first[1]}`"
            f" -> exit {refused.code}: {(refused.err or refused.out).strip()!r};"
            f" incomplete jobs of row 1: {row1_incomplete}; job {first[1]}: {row1_old_state}"
        )
        assert refused.code == 2
        assert str(newer) in refused.err
        assert row1_incomplete == [newer]
        assert row1_old_state == "completed"

        retried = await run_cli("jobs", "retry", str(first[2]), "-c", str(config))
        job2 = await conn.fetchrow(
            "SELECT state::text AS state, uniq_key FROM jobd.jobs WHERE id = $1", first[2]
        )
        again = await conn.fetchval(RUN_TRIGGER, 2)
        row2_incomplete = await conn.fetchval(INCOMPLETE, 2)
        print(
            f"row 2: `jobs retry {first[2]}` -> exit {retried.code}; job {first[2]}:"
            f" {job2['state']}, key {job2['uniq_key']!r}; jobd.run_trigger for row 2 -> {again};"
            f" incomplete jobs of row 2: {row2_incomplete}"
        )
        assert retried.code == 0, retried
        assert job2["state"] == "available"
        assert job2["uniq_key"] is not None
        assert again is None
        assert row2_incomplete == [first[2]]

        daemons.append(await start_daemon(config, tmp_path / "second.log"))
        await daemons[1].ready()

        async def all_completed() -> bool:
            return await states(conn) == {"completed": 3}

        assert await settle(all_completed, 15), await states(conn)
        assert await daemons[1].stop() == 0
        runs = dict(await conn.fetch("SELECT item_id, count(*) FROM public.executions GROUP BY 1"))
        print(f"after the second daemon: {await states(conn)}; executions per row: {runs}")
        assert runs == {1: 2, 2: 2}
    finally:
        for daemon in daemons:
            await daemon.kill()
        await conn.close()
