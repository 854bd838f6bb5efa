"""`jobd run` with `otel: {enabled: true, exporter: console}` traces what it does: the
daemon wires tracing from the configuration (spans appear on stdout as the SDK's console
exporter writes them), and a clean stop flushes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.acceptance import daemon_harness as h

db, port, daemon_for = h.db, h.port, h.daemon_for  # fixtures

OTEL = """
otel: {enabled: true, exporter: console, service_name: jobd-test}
"""


def test_jobd_run_exports_a_span_per_attempt(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """A job run by `jobd run` ends up as a `job orders.process` span of service
    jobd-test on stdout, with its job id."""
    config = h.write_config(tmp_path / "jobd.yaml", db, port, extra=OTEL)
    daemon = daemon_for(config)
    daemon.start()
    h.add_orders(db, (1, 0))
    (job_id,) = h.enqueue(db, 1)
    h.wait_for(lambda: h.all_in(db, [job_id], "completed"), what="the job completed")
    assert daemon.stop() == 0
    text = "\n".join(daemon.other_lines)
    assert '"name": "job orders.process"' in text, daemon.log_tail()
    assert f'"jobd.job_id": {job_id}' in text
    assert '"service.name": "jobd-test"' in text


def test_jobd_run_sends_otlp_to_the_configured_endpoint(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """With `exporter: otlp`, the spans reach the configured endpoint as OTLP/HTTP
    protobuf (a loopback collector stands in); a graceful stop flushes the batch."""
    received: list[tuple[str, dict[str, str], bytes]] = []

    def collect(path: str, headers: dict[str, str], body: bytes) -> h.Reply:
        received.append((path, headers, body))
        return 200, b""

    with h.http_receiver(collect) as collector:
        otel = f'\notel: {{enabled: true, endpoint: "{collector}/v1/traces"}}\n'
        config = h.write_config(tmp_path / "jobd.yaml", db, port, extra=otel)
        daemon = daemon_for(config)
        daemon.start()
        h.add_orders(db, (1, 0))
        (job_id,) = h.enqueue(db, 1)
        h.wait_for(lambda: h.all_in(db, [job_id], "completed"), what="the job completed")
        assert daemon.stop() == 0
    assert received, "no OTLP request reached the collector"
    paths = {path for path, _, _ in received}
    assert paths == {"/v1/traces"}
    types = {v for _, hdrs, _ in received for k, v in hdrs.items() if k.lower() == "content-type"}
    assert types == {"application/x-protobuf"}
    assert any(b"job orders.process" in body for _, _, body in received)
