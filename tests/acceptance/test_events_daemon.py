"""Change-data triggers (`events:`) through the real CLI: two `jobd run` processes on one
configuration, `jobd migrate -c` installing the database triggers, `jobd check --db`
reporting a missing one, `jobd explain` printing them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.acceptance import daemon_harness as h

db, port, daemon_for = h.db, h.port, h.daemon_for

CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
engine: {{poll_interval: 5s, shutdown_grace: 5s, heartbeat: 1s}}
resources:
  orders:
    table: public.orders
    actions:
      nap: {{python: "tests.acceptance.entrypoints:nap"}}
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process:
        action: nap
        where: "status = 'new'"
        scheduler_cron: false
        events: [insert]
        on_success: done
"""


def write(tmp_path: Path, url: str, port: int, name: str = "jobd.yaml") -> Path:
    path = tmp_path / name
    path.write_text(CONFIG.format(url=url, port=port))
    return path


def db_triggers(url: str) -> list[str]:
    rows = h.sql(url, "SELECT tgname::text AS n FROM pg_trigger WHERE tgname LIKE 'jobd\\_%'")
    return [r["n"] for r in rows]


def test_two_daemons_on_one_configuration(db: str, tmp_path: Path, daemon_for: Any) -> None:
    """Two daemons started together on one configuration with `events: [insert]` and no
    scan: one database trigger exists; 300 rows written in 30 statements each get
    exactly one job, run once (status done) by one of the daemons; both stop cleanly."""
    first = daemon_for(write(tmp_path, db, h.free_port(), "a.yaml"))
    second = daemon_for(write(tmp_path, db, h.free_port(), "b.yaml"))
    first.spawn()  # both start at once: their installs meet at the advisory lock
    second.spawn()
    first.wait_event("daemon.ready", timeout_s=30)
    second.wait_event("daemon.ready", timeout_s=30)
    assert len(db_triggers(db)) == 1
    for batch in range(30):
        h.sql(
            db,
            "INSERT INTO public.orders (id) SELECT g FROM generate_series($1::int, $2::int) g",
            batch * 10 + 1,
            batch * 10 + 10,
        )

    def all_done() -> bool:
        rows = h.sql(db, "SELECT count(*) AS n FROM public.orders WHERE status = 'done'")
        return rows[0]["n"] == 300

    h.wait_for(all_done, timeout_s=30, what="300 rows done")
    rows = h.sql(
        db,
        "SELECT args->'pk'->>'id' AS id, count(*) AS n, min(state::text) AS s FROM jobd.jobs"
        " WHERE worker = 'orders.process' GROUP BY 1",
    )
    assert len(rows) == 300 and all(r["n"] == 1 and r["s"] == "completed" for r in rows)
    assert first.stop(signal.SIGTERM) == 0 and second.stop(signal.SIGTERM) == 0


def test_migrate_check_and_explain(db: str, port: int, tmp_path: Path) -> None:
    """`jobd migrate -c` installs the database trigger (a second run changes nothing) and
    the events enqueue before any daemon runs; `jobd check --db` passes, then notes the
    trigger missing at the `events` key once it is dropped (a note, exit 0: the next
    start installs it); `jobd explain` prints the function and the trigger."""
    config = write(tmp_path, db, port)
    out = h.run_cli("migrate", "-c", str(config))
    assert out.returncode == 0, out.stderr
    assert "database triggers: created 2, dropped 0" in out.stdout
    again = h.run_cli("migrate", "-c", str(config))
    assert "database triggers: up to date" in again.stdout
    h.sql(db, "INSERT INTO public.orders (id) VALUES (1)")
    assert h.sql(db, "SELECT args->>'event' AS e FROM jobd.jobs") == [{"e": "insert"}]
    assert h.run_cli("check", "--db", "-c", str(config)).returncode == 0
    [name] = db_triggers(db)
    h.sql(db, f'DROP TRIGGER "{name}" ON public.orders; SELECT 1')
    checked = h.run_cli("check", "--db", "-c", str(config))
    assert checked.returncode == 0, checked.stderr
    note = f"{config}: note: resources.orders.triggers.process.events: database trigger"
    assert note in checked.stdout and "(insert) is missing" in checked.stdout
    explained = h.run_cli("explain", "orders", "process", "-c", str(config))
    assert explained.returncode == 0, explained.stderr
    assert "SECURITY DEFINER SET search_path = pg_catalog, pg_temp" in explained.stdout
    assert f'CREATE TRIGGER "{name}" AFTER INSERT ON "public"."orders"' in explained.stdout
