"""Issue 11, case 9: an action that always fails, with an `on_error` that leaves the row
matching `where` and without `on_error_fails_job`, against the real daemon and its
scheduler. After on_error the row rests: its key is held for `discard_cooldown`, so the
scheduler does not send it again at every scan (the AshOban trap docs/semantics.md says
jobd avoids)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.faults.daemon import DaemonProc
from tests.faults.edge_daemon import jobd_code, settle, start_daemon, states
from tests.faults.inprocess import http_sink
from tests.faults.throwaway_pg import free_port

pytestmark = pytest.mark.faults

ROWS = 5
SCANS_AFTER = 5  # scheduler runs watched after the jobs ended

# `scheduler_cron` every second (6 fields): many scans in a few seconds. Everything else
# is a default: max_attempts 1, discard_cooldown 1h, on_error_fails_job false, the HTTP
# action's success and retry_on (a 400 fails at once and goes to on_error).
CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
resources:
  orders:
    table: public.orders
    actions:
      send: {{http: {{url: "{sink}/orders/{{record.id}}"}}}}
      note_failure: {{update: {{set: {{last_error: {{error: message}}}}}}}}
    triggers:
      send:
        action: send
        where: "processed IS NOT TRUE"
        scheduler_cron: "* * * * * *"
        on_error: note_failure
"""


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus exposition `text` (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        body = line[len(name) + 1 : line.index("}")]
        found = dict(part.split("=", 1) for part in body.split(","))
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_row_on_error_did_not_change_is_not_sent_again(
    database_url: str, tmp_path: Path
) -> None:
    """Five rows match a trigger whose webhook always answers 400 and whose on_error
    writes an unrelated column. Each row's job ends `completed` with `meta.handled` and its
    error kept, the row's last_error written; the job keeps its unique key (held for the
    default discard_cooldown, 1h), so the following every-second scans (at least five,
    each scanning the five rows) enqueue nothing: the webhook was called exactly once per
    row and each row has exactly one job. `/metrics` counts the jobs with outcome
    `handled`, none as `completed`."""
    hits: list[str] = []

    async def sink(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"error": "bad order"}, status=400)

    port = free_port()
    conn = await asyncpg.connect(database_url)
    daemon: DaemonProc | None = None
    try:
        await conn.execute(
            "CREATE TABLE public.orders (id int PRIMARY KEY, processed boolean,"
            " last_error text);"
            f" INSERT INTO public.orders (id) SELECT generate_series(1, {ROWS})"
        )
        async with http_sink(sink) as sink_url:
            config = tmp_path / "jobd.yaml"
            config.write_text(CONFIG.format(url=database_url, port=port, sink=sink_url))
            daemon = await start_daemon(config, tmp_path / "daemon.log")
            print(f"\njobd code: {await jobd_code(daemon)}")
            await daemon.ready()
            started = time.monotonic()

            async def first_jobs_ended() -> bool:
                ended = await conn.fetchval(
                    "SELECT count(*) FROM jobd.jobs WHERE worker = 'orders.send'"
                    " AND state IN ('completed', 'discarded')"
                )
                return int(ended) >= ROWS

            assert await settle(first_jobs_ended, 15), await states(conn)
            ended_s = time.monotonic() - started
            mark = len(daemon.events)

            def scans() -> list[dict[str, Any]]:
                return [e for e in daemon.events[mark:] if e.get("event") == "scheduler.run"]

            async def scanned_enough() -> bool:
                return len(scans()) >= SCANS_AFTER

            assert await settle(scanned_enough, SCANS_AFTER + 5)
            watched_s = time.monotonic() - started - ended_s
            runs = scans()
            jobs = await conn.fetch(
                "SELECT (args->'pk'->>'id')::int AS id, state::text AS state,"
                " meta ? 'handled' AS handled, cardinality(errors) AS errors,"
                " uniq_key IS NOT NULL AS holds_key"
                " FROM jobd.jobs WHERE worker = 'orders.send' ORDER BY id, inserted_at"
            )
            per_row = {row: hits.count(f"/orders/{row}") for row in range(1, ROWS + 1)}
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/metrics") as response,
            ):
                exposition = await response.text()
            labels = {"queue": "orders_send", "worker": "orders.send"}
            handled = metric(exposition, "jobd_jobs_total", outcome="handled", **labels)
            completed = metric(exposition, "jobd_jobs_total", outcome="completed", **labels)
            noted = await conn.fetchval(
                "SELECT count(*) FROM public.orders WHERE last_error LIKE '%400%'"
            )
            print(
                f"first jobs ended {ended_s:.2f} s after ready; then {len(runs)} scans in"
                f" {watched_s:.2f} s (rows scanned/enqueued per scan:"
                f" {[(e.get('scanned'), e.get('enqueued')) for e in runs]});"
                f" webhook calls per row: {per_row}; jobs: {len(jobs)}"
                f" {await states(conn, 'orders.send')}; metrics: handled={handled},"
                f" completed={completed}; rows with last_error: {noted}"
            )
            assert per_row == dict.fromkeys(range(1, ROWS + 1), 1), per_row
            assert len(jobs) == ROWS, [dict(row) for row in jobs]
            for row in jobs:
                assert (row["state"], row["handled"], row["errors"], row["holds_key"]) == (
                    "completed",
                    True,
                    1,
                    True,
                ), dict(row)
            assert noted == ROWS
            assert (handled, completed) == (ROWS, 0)
            assert await daemon.stop() == 0
    finally:
        if daemon is not None:
            await daemon.kill()
        await conn.close()
