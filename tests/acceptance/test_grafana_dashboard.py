"""The Grafana dashboard (deploy/grafana/jobd.json) asks only for metrics a real daemon
exports: a `jobd run` process does real work (an HTTP action against a loopback sink that
answers 200 and 500, a scheduler scan, retries and a discard, a job no node can claim),
then its `/metrics` is scraped and every metric name the dashboard's queries use must be
among the series it serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance import daemon_harness as h

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "jobd.json"
db, port, daemon_for = h.db, h.port, h.daemon_for  # fixtures

SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{")
METRIC_LIKE = re.compile(r"\b((?:jobd|process)_[A-Za-z0-9_]+)")

CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
engine: {{poll_interval: 200ms, heartbeat: 1s}}
queues: {{default: 2, work: 5}}
resources:
  orders:
    table: public.orders
    actions:
      hook: {{http: {{url: "{sink}/orders/{{record.id}}", timeout: 5s}}}}
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process:
        action: hook
        where: "status = 'new'"
        scheduler_cron: "0 0 1 1 *"
        on_success: done
        queue: work
        max_attempts: 2
        backoff: {{fixed: 1s}}
"""


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panels, rows' panels, variables)."""
    data = json.loads(DASHBOARD.read_text())
    panels = [*data["panels"], *(p for row in data["panels"] for p in row.get("panels", []))]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [v["definition"] for v in data["templating"]["list"] if v.get("definition")]
    return exprs


def queried_metrics() -> set[str]:
    names: set[str] = set()
    for expr in dashboard_queries():
        selected = set(SELECTOR.findall(expr)) | set(METRIC_LIKE.findall(expr))
        assert selected, f"no metric in {expr!r}"
        names |= selected
    return names


@pytest.fixture
def sink() -> Iterator[str]:
    """A loopback webhook receiver: 500 for order 2, 200 for the others."""
    with h.http_receiver(lambda path, _, __: (500 if path.endswith("/2") else 200, b"{}")) as url:
        yield url


def scrape(port: int) -> dict[str, int]:
    """Sample name -> number of series on the daemon's /metrics."""
    status, text = h.http(port, "/metrics")
    assert status == 200
    counts: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counts[sample.name] = counts.get(sample.name, 0) + 1
    return counts


def test_dashboard_has_the_panels_the_issue_names() -> None:
    """Throughput and failures by queue and trigger, depth by state, both latency
    quantiles, scheduler rows, HTTP statuses, leader and nodes, process resources: each
    has a query."""
    text = "\n".join(dashboard_queries())
    for needed in (
        "sum by (queue, outcome) (rate(jobd_jobs_total",
        "sum by (queue, worker, outcome) (rate(jobd_jobs_total",
        "max by (queue, state) (jobd_queue_depth",
        "histogram_quantile(0.95, sum by (le) (rate(jobd_job_execution_seconds_bucket",
        "histogram_quantile(0.95, sum by (le) (rate(jobd_job_queue_wait_seconds_bucket",
        "jobd_scheduler_rows_scanned_total",
        "jobd_scheduler_rows_enqueued_total",
        "sum by (action, status) (rate(jobd_http_action_responses_total",
        "sum(jobd_leader",
        "max(jobd_nodes",
        "rate(process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ):
        assert needed in text, needed


def test_every_metric_the_dashboard_queries_is_exported(
    db: str, port: int, tmp_path: Path, daemon_for: Any, sink: str
) -> None:
    """After real work, the daemon's /metrics serves a series for every metric name in the
    dashboard's queries (none is misspelt, renamed or missing a suffix)."""
    config = tmp_path / "jobd.yaml"
    config.write_text(CONFIG.format(url=db, port=port, sink=sink))
    daemon = daemon_for(config)
    daemon.start()
    h.add_orders(db, (1, 0), (2, 0))
    # A job of a worker no node knows: it waits, and jobd_jobs_waiting_for_worker says so.
    h.sql(db, "INSERT INTO jobd.jobs (queue, worker) VALUES ('default', 'gone.trigger')")
    out = h.run_cli("trigger", "orders", "process", "-c", str(config))
    assert out.returncode == 0, out.stderr
    h.wait_for(
        lambda: (
            h.sql(db, "SELECT state FROM jobd.jobs WHERE worker = 'orders.process' ORDER BY id")
            == [{"state": "completed"}, {"state": "discarded"}]
        ),
        timeout_s=30,
        what="order 1 completed and order 2 discarded after its retry",
    )
    daemon.wait_event("leader.elected")

    served = scrape(port)
    missing = sorted(m for m in queried_metrics() if not served.get(m))
    assert missing == [], f"the dashboard queries metrics /metrics does not serve: {missing}"
    assert daemon.stop() == 0
