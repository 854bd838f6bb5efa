"""Every interface against a live `jobd run` process on a fresh test database: each CLI
command, the admin HTTP API with and without a token, `/metrics` as Prometheus text, the
SQL function inside committed and rolled-back transactions, and `jobd.Client`.

The daemon and its config come from `daemon_harness` (table `orders`, trigger
`orders.process` on queue `work`, scheduled action `orders.tally`).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

import jobd
from jobd.client import UnknownTrigger
from tests.acceptance import daemon_harness as h

db, port, daemon_for = h.db, h.port, h.daemon_for  # fixtures (see test_daemon.py)


def cli_ok(*args: str) -> str:
    """stdout of a CLI command that must exit 0 without a traceback."""
    out = h.run_cli(*args)
    assert out.returncode == 0, f"jobd {' '.join(args)}: {out.stderr}"
    assert "Traceback" not in out.stderr
    return out.stdout


def order_status(url: str, order_id: int) -> str:
    return str(h.sql(url, "SELECT status FROM public.orders WHERE id = $1", order_id)[0]["status"])


# -- 5. the CLI against a live daemon -----------------------------------------------------


def test_trigger_and_schedule_commands(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """`trigger --pk` and `trigger` (the scheduler now) make the live daemon run the rows;
    `schedule` runs a scheduled action with the given input."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    c = ("-c", str(config))
    daemon = daemon_for(config)
    daemon.start()
    h.add_orders(db, (1, 0), (2, 0), (3, 0))

    out = cli_ok("trigger", "orders", "process", "--pk", "1", *c)
    assert re.search(r"1 job\(s\) enqueued \[\d+\]", out), out
    h.wait_for(lambda: order_status(db, 1) == "done", what="order 1 processed")
    assert "scheduler" in cli_ok("trigger", "orders", "process", *c)  # no --pk: scan now
    h.wait_for(lambda: {order_status(db, i) for i in (2, 3)} == {"done"}, what="the scan's jobs")

    assert "job" in cli_ok("schedule", "orders", "tally", "--input", '{"period": "day"}', *c)
    notes = lambda: h.sql(db, "SELECT schedule, input FROM public.notes")  # noqa: E731
    assert h.wait_for(notes, what="the scheduled action's note") == [
        {"schedule": "tally", "input": '{"period": "day"}'}
    ]
    assert daemon.stop() == 0


def test_jobs_status_explain_migrate_commands(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """`jobs list` (JSON, with each job's outcome) and `jobs show` report the live
    daemon's jobs, `jobs retry` prints what it did (not a state read back after the daemon
    ran the job again), `status` names it as leader, `explain` prints the SQL, `migrate`
    is up to date."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    c = ("-c", str(config))
    daemon = daemon_for(config)
    ready = daemon.start()
    h.add_orders(db, (1, 0), (2, 0))
    ids = h.enqueue(db, 1, 2)
    h.wait_for(lambda: h.all_in(db, ids, "completed"), what="the jobs completed")

    listed = json.loads(cli_ok("jobs", "list", "--worker", "orders.process", "--json", *c))
    assert sorted(j["id"] for j in listed) == sorted(ids)
    assert {(j["state"], j["outcome"]) for j in listed} == {("completed", "succeeded")}
    shown = cli_ok("jobs", "show", str(ids[0]), *c)
    assert re.search(r"^state\s+completed$", shown, re.M), shown
    # retry says what it did, however fast the daemon then runs the job again
    assert cli_ok("jobs", "retry", str(ids[0]), *c) == f"job {ids[0]}: available\n"
    # ... and it ran: its row is done, so the trigger no longer applies and it cancels
    h.wait_for(lambda: h.all_in(db, ids[:1], "cancelled"), what="the retried job ran again")
    status = cli_ok("status", *c)
    assert f"leader: {ready['node_id']}" in status and "nodes: 1" in status
    explained = cli_ok("explain", "orders", "process", *c)
    assert "-- scheduler" in explained and '"public"."orders"' in explained
    assert "up to date" in cli_ok("migrate", *c)
    assert daemon.stop() == 0


def test_queue_pause_and_resume_reach_the_live_daemon(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """`queues pause` is applied by the live daemon: jobs of that queue stay `available`
    while another queue's job runs; `jobs cancel` and `jobs retry` change the waiting job;
    after `queues resume` it runs."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    c = ("-c", str(config))
    daemon = daemon_for(config)
    daemon.start()

    mark = daemon.mark()
    assert cli_ok("queues", "pause", "work", *c).startswith("queue work: paused")
    daemon.wait_event("queue.paused", start=mark, queue="work")  # the daemon applied it
    h.add_orders(db, (4, 0))
    [job_id] = h.enqueue(db, 4)
    h.sql(db, "SELECT jobd.run_schedule('orders', 'tally')")  # another queue keeps running
    h.wait_for(lambda: h.sql(db, "SELECT 1 FROM public.notes"), what="the other queue's job")
    assert h.job_states(db, [job_id]) == {job_id: "available"}

    assert cli_ok("jobs", "cancel", str(job_id), *c) == f"job {job_id}: cancelled\n"
    assert cli_ok("jobs", "retry", str(job_id), *c) == f"job {job_id}: available\n"
    mark = daemon.mark()
    assert "running" in cli_ok("queues", "resume", "work", *c)
    daemon.wait_event("queue.resumed", start=mark, queue="work")
    h.wait_for(lambda: h.all_in(db, [job_id], "completed"), what="the job after resume")
    assert daemon.stop() == 0


def test_queue_scale_and_list_commands(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """`queues scale` sets (and `--reset` restores) a limit the live daemon's API
    reports, and that API refuses a limit beyond its pool; `queues list` shows it as a
    table; `jobs cancel` of a completed job exits 1 with a message."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    c = ("-c", str(config))
    daemon = daemon_for(config)
    daemon.start()
    assert "limit 3" in cli_ok("queues", "scale", "work", "3", *c)
    queues = h.http(port, "/api/queues")[1]["queues"]
    assert next(q for q in queues if q["name"] == "work")["limit"] == 3
    # the live daemon's API refuses a limit its pool cannot hold (the pool: 5 + 5 + 5)
    status, body = h.http(port, "/api/queues/work/scale", method="POST", body={"limit": 500})
    assert status == 400 and "pool_size" in body["error"] + body.get("hint", ""), body
    assert "limit 5" in cli_ok("queues", "scale", "work", "--reset", *c)
    table = cli_ok("queues", "list", *c)
    assert re.search(r"^work\s+no\s+5\b", table, re.M), table
    h.add_orders(db, (1, 0))
    [job_id] = h.enqueue(db, 1)
    h.wait_for(lambda: h.all_in(db, [job_id], "completed"), what="the job completed")
    again = h.run_cli("jobs", "cancel", str(job_id), *c)
    assert again.returncode == 1 and "cannot cancel" in again.stderr
    assert "Traceback" not in again.stderr
    assert daemon.stop() == 0


# -- 6. the HTTP API and /metrics ---------------------------------------------------------


def metric_value(text: str, family: str, sample: str, **labels: str) -> float:
    """The sum of the samples `sample` of `family` whose labels include `labels`."""
    total = 0.0
    for metric in text_string_to_metric_families(text):
        if metric.name == family:
            total += sum(
                s.value
                for s in metric.samples
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
            )
    return total


def test_http_api_with_token_and_metrics(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """With admin.token set: the API answers 401 without or with a wrong token and 200
    with it; probes and metrics stay open; jobs run through the API are counted in
    `/metrics`, which prometheus-client's parser reads; the token never reaches the log."""
    token = "s3cret-admin-token"
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port, token=token))
    daemon.start()
    assert daemon.find("admin.listening", port=port, token=True)  # a flag, not redacted
    assert h.http(port, "/api/status")[0] == 401
    assert h.http(port, "/api/status", token="wrong")[0] == 401
    assert h.http(port, "/api/status", token=token)[0] == 200
    assert h.http(port, "/healthz")[0] == 200 and h.http(port, "/readyz")[0] == 200

    h.add_orders(db, (1, 0), (2, 0))
    run = "/api/triggers/orders/process/run"
    bad = h.http(port, run, method="POST", body={"primary_key": 1}, token=token)
    assert bad[0] == 400 and "primary_key" in bad[1]["error"]
    status, body = h.http(
        port, run, method="POST", token=token, body={"primary_keys": [{"id": 1}, {"id": 2}]}
    )
    assert status == 200 and len(body["job_ids"]) == 2, body
    h.wait_for(lambda: h.all_in(db, body["job_ids"], "completed"), what="the API's jobs")
    status, job = h.http(port, f"/api/jobs/{body['job_ids'][0]}", token=token)
    assert status == 200 and job["state"] == "completed"

    status, text = h.http(port, "/metrics")
    assert status == 200 and isinstance(text, str)
    done = dict(outcome="completed", queue="work", worker="orders.process")
    assert metric_value(text, "jobd_jobs", "jobd_jobs_total", **done) >= 2
    assert (
        metric_value(
            text, "jobd_job_execution_seconds", "jobd_job_execution_seconds_count", queue="work"
        )
        >= 2
    )
    assert metric_value(text, "jobd_queue_depth", "jobd_queue_depth", state="completed") >= 2
    h.wait_for(
        lambda: metric_value(h.http(port, "/metrics")[1], "jobd_leader", "jobd_leader"),
        what="the leader gauge",
    )
    assert daemon.stop() == 0
    assert token not in daemon.log_tail(lines=1000)


# -- 7. the SQL function and jobd.Client ---------------------------------------------------


async def enqueue_in_transactions(url: str) -> tuple[int, int]:
    """(job id of a committed run_trigger, job id of a rolled-back one)."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute("INSERT INTO public.orders (id) VALUES (1)")
            committed = await conn.fetchval(
                "SELECT jobd.run_trigger('orders', 'process', '{\"id\": 1}')"
            )
        rollback = conn.transaction()
        await rollback.start()
        await conn.execute("INSERT INTO public.orders (id) VALUES (2)")
        rolled_back = await conn.fetchval(
            "SELECT jobd.run_trigger('orders', 'process', '{\"id\": 2}')"
        )
        await rollback.rollback()
    finally:
        await conn.close()
    return committed, rolled_back


def test_sql_function_commit_and_rollback(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """`jobd.run_trigger` in a committed transaction: the live daemon runs the job; in a
    rolled-back one: no job, no row."""
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port))
    daemon.start()
    committed, rolled_back = asyncio.run(enqueue_in_transactions(db))
    h.wait_for(lambda: h.all_in(db, [committed], "completed"), what="the committed job")
    assert order_status(db, 1) == "done"
    assert h.sql(db, "SELECT id FROM jobd.jobs WHERE id = $1", rolled_back) == []
    assert h.sql(db, "SELECT id FROM public.orders WHERE id = 2") == []
    assert [r["id"] for r in h.sql(db, "SELECT id FROM jobd.jobs")] == [committed]
    assert daemon.stop() == 0


def test_migrate_with_config_readies_the_sql_functions_before_any_daemon(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """On a database without jobd's schema, `jobd migrate -c` alone makes `jobd.run_trigger`
    accept the config's trigger (issue 18): the committed call's job waits, the rolled-back
    one leaves nothing; the first `jobd run` then runs the committed job exactly once."""
    h.sql(db, "DROP SCHEMA jobd CASCADE;")
    config = h.write_config(tmp_path / "jobd.yaml", db, port)
    migrated = cli_ok("migrate", "-c", str(config)).splitlines()
    assert migrated[0].startswith("schema jobd: applied migrations 1")
    assert migrated[1].startswith("registry: 1 trigger, 1 schedule ")
    committed, rolled_back = asyncio.run(enqueue_in_transactions(db))
    waiting = h.sql(db, "SELECT id, state FROM jobd.jobs")
    assert waiting == [{"id": committed, "state": "available"}]  # no daemon yet: it waits
    daemon = daemon_for(config)
    daemon.start()
    h.wait_for(lambda: h.all_in(db, [committed], "completed"), what="the committed job")
    assert order_status(db, 1) == "done"
    assert daemon.stop() == 0
    runs = [(e["job_id"], e["attempt"]) for e in daemon.find("job.complete")]
    assert runs == [(committed, 1)]
    assert h.sql(db, "SELECT id FROM jobd.jobs WHERE id = $1", rolled_back) == []
    assert h.sql(db, "SELECT id FROM public.orders WHERE id = 2") == []


async def use_client(url: str) -> list[int]:
    """Enqueue through jobd.Client: one row, two rows, the scheduled action."""
    async with jobd.Client(url) as client:
        one = await client.run_trigger("orders", "process", {"id": 1}, actor={"id": 7})
        many = await client.run_triggers("orders", "process", [{"id": 2}, {"id": 3}])
        tally = await client.schedule("orders", "tally", input={"period": "week"})
        try:
            await client.run_trigger("orders", "nope", {"id": 1})
        except UnknownTrigger as exc:
            assert "nope" in str(exc)
        else:
            raise AssertionError("an unknown trigger must raise UnknownTrigger")
    assert one is not None
    return [one, *many, tally]


def test_client_against_a_live_daemon(db: str, port: int, tmp_path: Path, daemon_for: Any) -> None:
    """`jobd.Client` enqueues trigger and schedule jobs the live daemon runs; an unknown
    trigger is a clear error."""
    daemon = daemon_for(h.write_config(tmp_path / "jobd.yaml", db, port))
    daemon.start()
    h.add_orders(db, (1, 0), (2, 0), (3, 0))
    ids = asyncio.run(use_client(db))
    assert len(ids) == 4
    h.wait_for(lambda: h.all_in(db, ids, "completed"), what="the client's jobs")
    assert {order_status(db, i) for i in (1, 2, 3)} == {"done"}
    notes = h.sql(db, "SELECT input FROM public.notes")
    assert notes == [{"input": '{"period": "week"}'}]
    assert daemon.stop() == 0
