"""`sign: {scheme: standard-webhooks}` as a receiver sees it: a real `jobd run` calls a
loopback receiver that verifies every request with the `standardwebhooks` package (the
reference library of the specification), exactly as its documentation tells a receiver
to, and answers 401 to anything that does not verify."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.acceptance import daemon_harness as h

db, port, daemon_for = h.db, h.port, h.daemon_for  # fixtures

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()

CONFIG = """
version: 1
database: {{url: "{url}"}}
log: {{format: json, level: info}}
admin: {{listen: "127.0.0.1:{port}"}}
engine: {{poll_interval: 200ms, heartbeat: 1s}}
queues: {{default: 2, work: 2}}
resources:
  orders:
    table: public.orders
    actions:
      hook:
        http:
          url: "{sink}/orders/{{record.id}}"
          sign: {{scheme: standard-webhooks, secret: "${{WEBHOOK_SECRET}}"}}
      done: {{update: {{set: {{status: done}}}}}}
    triggers:
      process:
        action: hook
        where: "status = 'new'"
        scheduler_cron: false
        on_success: done
        queue: work
        max_attempts: 3
        backoff: {{fixed: 1s}}
"""


def test_receiver_verifies_with_the_standardwebhooks_package(
    db: str, port: int, tmp_path: Path, daemon_for: Any
) -> None:
    """Every request verifies with `Webhook(secret).verify(body, headers)`; the body it
    returns is the job's envelope; a retry keeps its `webhook-id` (the job id, like
    Idempotency-Key) while its timestamp and signature are new; the same headers with a
    changed body, or another secret, fail verification. The secret is in no log line."""
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()
    receiver = Webhook(SECRET)

    def answer(path: str, headers: dict[str, str], body: bytes) -> h.Reply:
        try:
            payload = receiver.verify(body, headers)
        except WebhookVerificationError as exc:
            return 401, str(exc).encode()
        with lock:
            seen.append({"headers": headers, "body": body, "payload": payload})
            first = len(seen) == 1
        return (503 if first else 200), b"{}"  # the first attempt is retried

    with h.http_receiver(answer) as sink:
        config = tmp_path / "jobd.yaml"
        config.write_text(CONFIG.format(url=db, port=port, sink=sink))
        daemon = daemon_for(config, env={"WEBHOOK_SECRET": SECRET})
        daemon.start()
        h.add_orders(db, (7, 0))
        (job_id,) = h.enqueue(db, 7)
        h.wait_for(lambda: h.all_in(db, [job_id], "completed"), timeout_s=30, what="job done")
        assert daemon.stop() == 0

    first, retry = seen
    assert first["payload"]["primary_key"] == {"id": 7}
    assert first["payload"]["job"]["id"] == job_id
    assert [s["payload"]["job"]["attempt"] for s in seen] == [1, 2]
    ids = {s["headers"]["webhook-id"] for s in seen}
    assert ids == {str(job_id)} == {s["headers"]["Idempotency-Key"] for s in seen}
    assert first["headers"]["webhook-signature"].startswith("v1,")
    assert "Jobd-Signature" not in first["headers"]

    tampered = json.dumps({**first["payload"], "record": {"id": 8}}).encode()
    for body, secret in ((tampered, SECRET), (retry["body"], "whsec_" + "A" * 43 + "=")):
        try:
            Webhook(secret).verify(body, retry["headers"])
        except WebhookVerificationError:
            continue
        raise AssertionError("a changed body or another secret verified")
    logged = "\n".join(map(json.dumps, daemon.events)) + "\n".join(daemon.other_lines)
    assert SECRET not in logged and SECRET.removeprefix("whsec_") not in logged
