"""The example config validates, and the model it builds is complete, resolved and immutable."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobd.common.cron import cron_iter
from jobd.config import load_config, load_config_text
from jobd.errors import ConfigError
from jobd.model import ErrorValue, LiteralValue, ResponseValue, Spec, SqlValue

EXAMPLE = Path(__file__).parents[3] / "config.example.yaml"


@pytest.fixture(scope="module")
def example() -> Spec:
    return load_config(EXAMPLE, env={})


def test_example_validates_on_a_fresh_machine(example: Spec) -> None:
    """config.example.yaml loads with an empty environment (every variable has a default)."""
    assert example.summary() == "3 resources, 4 triggers, 2 schedules, 7 queues"
    assert example.database.url is None  # embedded Postgres
    assert EXAMPLE.read_text().startswith("# yaml-language-server: $schema=schema/jobd.schema.json")


def test_example_http_actions_point_at_the_demo_sink(example: Spec) -> None:
    """HTTP URLs default to the local demo sink, and follow $JOBD_DEMO_SINK when set."""
    http = example.resources["orders"].actions["process"].http
    assert http is not None and http.url.startswith("http://127.0.0.1:8371/")
    other = load_config(EXAMPLE, env={"JOBD_DEMO_SINK": "http://10.0.0.1:9"})
    other_http = other.resources["orders"].actions["process"].http
    assert other_http is not None and other_http.url.startswith("http://10.0.0.1:9/")


def test_names_queues_and_inheritance_are_resolved(example: Spec) -> None:
    """Defaults and inherited values are filled in once, in the model."""
    orders = example.resources["orders"]
    process = orders.triggers["process"]
    assert (process.worker_name, process.scheduler_name) == (
        "orders.process",
        "orders.process.scheduler",
    )
    assert (process.queue, process.scheduler_queue) == ("orders", "default")
    assert process.list_tenants is not None and process.list_tenants.names == ("acme", "globex")
    assert process.actor_persister is not None and process.actor_persister.store == ("id",)
    expire = orders.triggers["expire_stale"]
    assert expire.queue == expire.scheduler_queue == "orders_expire_stale"
    assert example.queues["orders_expire_stale"].implicit
    assert example.queues["orders_expire_stale"].limit == 10
    assert example.queues["orders"].global_limit == 50
    invoices = example.resources["invoices"]
    assert invoices.list_tenants is not None and invoices.list_tenants.names == ("acme",)
    assert invoices.table_schema is None and invoices.table_name == "invoices"
    assert invoices.triggers["send"].actor_persister is not None
    assert invoices.triggers["send"].actor_persister.python == "jobd.demo.entrypoints:Persister"
    users = example.resources["users"]
    assert users.triggers["welcome"].scheduler_cron is None
    assert users.list_tenants is None and users.triggers["welcome"].list_tenants is None


def test_set_values_and_durations_are_typed(example: Spec) -> None:
    """Update values are tagged; durations are seconds."""
    orders = example.resources["orders"]
    processed = orders.actions["mark_processed"].update
    failed = orders.actions["mark_failed"].update
    assert processed is not None and failed is not None
    assert processed.set["processed"] == LiteralValue(True)
    assert processed.set["processed_at"] == SqlValue("now()")
    assert processed.set["remote_ref"] == ResponseValue(("data", "id"))
    assert failed.set["last_error"] == ErrorValue("message")
    trigger = orders.triggers["process"]
    assert trigger.timeout_s == 30.0 and trigger.discard_cooldown_s == 3600.0
    assert example.engine.retention_s == {
        "completed": 86400.0,
        "cancelled": 604800.0,
        "discarded": 2592000.0,
    }
    schedule = orders.scheduled_actions["nightly_summary"]
    assert schedule.catch_up_window_s == 6 * 3600 and schedule.timezone == "Europe/Berlin"


def test_model_is_immutable_and_json_payloads_serialize(example: Spec) -> None:
    """Dataclasses are frozen, mappings read-only, JSON payloads still json.dumps-able."""
    trigger = example.resources["orders"].triggers["process"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        trigger.queue = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        example.resources["x"] = example.resources["orders"]  # type: ignore[index]
    with pytest.raises(TypeError):
        trigger.extra_args["y"] = 1  # type: ignore[index]
    assert json.loads(json.dumps(trigger.extra_args)) == {"source": "jobd"}


def test_backoff_delays() -> None:
    """Exponential backoff doubles from min up to max; fixed stays fixed; jitter bounds hold."""
    spec = load_config_text(
        "version: 1\nresources:\n  r:\n    table: t\n    actions: {a: {python: 'm:f'}}\n"
        "    triggers:\n      e: {action: a, backoff: {exponential: {min: 1s, max: 10s, "
        "jitter: 0}}}\n      f: {action: a, backoff: {fixed: 30s}}\n      d: {action: a}\n",
        env={},
    )
    triggers = spec.resources["r"].triggers
    assert [triggers["e"].backoff.delay_s(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
    assert triggers["f"].backoff.delay_s(7) == 30
    rng = random.Random(1)
    assert all(0.9 * 8 <= triggers["d"].backoff.delay_s(4, rng) <= 1.1 * 8 for _ in range(50))


def test_http_status_helpers(example: Spec) -> None:
    """success/retry_on accept exact codes and classes."""
    http = example.resources["orders"].actions["process"].http
    assert http is not None
    assert http.is_success(201) and not http.is_success(204)
    assert http.should_retry(503) and http.should_retry(599) and not http.should_retry(404)


def test_six_field_cron_puts_seconds_first() -> None:
    """`30 0 9 * * *` fires at 09:00:30, as SPEC 1.3 says (seconds first)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert cron_iter("30 0 9 * * *", start).get_next(datetime) == datetime(
        2024, 1, 1, 9, 0, 30, tzinfo=UTC
    )
    assert cron_iter("@HOURLY", start).get_next(datetime) == datetime(2024, 1, 1, 1, tzinfo=UTC)


def test_trigger_and_schedule_of_one_name_need_a_worker_name() -> None:
    """Default worker names collide when a trigger and a schedule share a name."""
    text = (
        "version: 1\nresources:\n  r:\n    table: t\n    actions: {a: {python: 'm:f'}}\n"
        "    triggers: {x: {action: a}}\n    scheduled_actions: {x: {cron: '@daily', action: a}}\n"
    )
    with pytest.raises(ConfigError, match=r"worker name 'r\.x' is already used by"):
        load_config_text(text, env={})
