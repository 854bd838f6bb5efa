"""A sample of a user's own tests of their jobd configuration (here config.example.yaml),
written with nothing but jobd.testing and its pytest plugin. docs/testing.md shows this
file as its worked example."""

from __future__ import annotations

from typing import Any

from jobd.testing import JobdTest
from tests.user_suite.conftest import Service


async def test_a_pending_order_is_sent_to_the_service_and_marked(
    jobd: JobdTest, db: Any, service: Service
) -> None:
    """Proves the orders.process trigger takes a pending order, calls the service with
    it, and marks the row processed with the service's reference (on_success)."""
    order = await db.fetchval("INSERT INTO orders (org_id) VALUES ('acme') RETURNING id")
    await jobd.assert_triggered("orders", "process", {"id": order})  # events: at once

    ran = await jobd.drain()

    assert ran.completed == 1 and ran.failed == 0
    assert service.paths == [f"/orders/{order}/process"]
    row = await db.fetchrow("SELECT processed, remote_ref FROM orders WHERE id = $1", order)
    assert row["processed"] is True and row["remote_ref"] == "ref-1"
    await jobd.assert_triggered("orders", "process", {"id": order}, state="completed")
    await jobd.refute_would_schedule("orders", "process", {"id": order})


async def test_the_scan_finds_rows_that_no_event_reported(jobd: JobdTest, db: Any) -> None:
    """Proves the scheduler's scan enqueues a row that was written with triggers off (a
    bulk load under session_replication_role = replica), per tenant."""
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute("INSERT INTO orders (id, org_id) VALUES (101, 'acme'), (102, 'globex')")
    await jobd.refute_triggered("orders", "process", {"id": 101})
    await jobd.assert_would_schedule("orders", "process", {"id": 101})

    ran = await jobd.schedule_and_drain("orders", "process")

    assert {tuple(j.pk.items()) for j in ran.of("orders", "process") if j.pk} == {
        (("id", 101),),
        (("id", 102),),
    }
    await jobd.assert_triggered("orders", "process", {"id": 102}, state="completed")


async def test_a_refused_call_ends_with_on_error_after_its_attempts(
    jobd: JobdTest, db: Any, service: Service
) -> None:
    """Proves a call the service refuses for good (400, not in retry_on) fails the job and
    on_error (mark_failed) writes the reason on the row."""
    service.status = 400
    order = await db.fetchval("INSERT INTO orders (org_id) VALUES ('globex') RETURNING id")

    ran = await jobd.drain()

    assert ran.completed == 1  # handled by on_error: the job completes, the row says why
    row = await db.fetchrow("SELECT status, last_error FROM orders WHERE id = $1", order)
    assert row["status"] == "failed" and "400" in row["last_error"]


async def test_an_unsent_invoice_of_a_tenant_schema_is_sent(jobd: JobdTest, db: Any) -> None:
    """Proves invoices.send (schema tenancy, a Python action writing through ctx.conn)
    stamps the invoices of tenant acme and leaves a zero invoice alone."""
    await db.execute("INSERT INTO acme.invoices VALUES ('INV-1', 1200), ('INV-0', 0)")
    await jobd.assert_would_schedule("invoices", "send", {"number": "INV-1"}, tenant="acme")
    await jobd.refute_would_schedule("invoices", "send", {"number": "INV-0"}, tenant="acme")

    await jobd.schedule_and_drain("invoices", "send")

    sent = await db.fetch("SELECT number FROM acme.invoices WHERE sent_at IS NOT NULL")
    assert [r["number"] for r in sent] == ["INV-1"]


async def test_a_user_is_welcomed_only_when_asked(
    jobd: JobdTest, db: Any, service: Service
) -> None:
    """Proves users.welcome has no scheduler (scheduler_cron: false): nothing runs until
    the application asks for the row, and then the row is marked welcomed."""
    await db.execute("INSERT INTO users (id, email) VALUES (7, 'ada@example.com')")
    assert await jobd.schedule_triggers("users") == 0
    await jobd.refute_triggered("users", "welcome", {"id": 7})

    await jobd.client.run_trigger("users", "welcome", {"id": 7})
    ran = await jobd.drain()

    assert [j.state for j in ran.of("users", "welcome")] == ["completed"]
    assert service.paths == ["/users/7/welcome"]
    assert await db.fetchval("SELECT welcomed_at IS NOT NULL FROM users WHERE id = 7")
