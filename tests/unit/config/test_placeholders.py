"""One placeholder grammar for `jobd check` and the renderer: every placeholder
docs/actions.md documents passes the check and renders, and a placeholder a run cannot
fill (a row's in a scheduled action, `{schedule}` in a trigger's) is a configuration error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobd.actions.templates import render_text
from jobd.config import load_config_text
from jobd.config.placeholders import ROW_ROOTS, SCHEDULE_ROOTS, check_template, uses
from jobd.errors import ConfigError

DOCUMENTED = (
    "{record.id} {record.payload.customer} {primary_key.id} {actor.id} {input.period} "
    "{job.id} {job.attempt} {job.max_attempts} {job.queue} {job.priority} "
    "{job.inserted_at} {tenant} {resource} {trigger} {schedule} {action} {{literal}}"
)
VALUES = {
    "record": {"id": 1, "payload": {"customer": "c"}},
    "primary_key": {"id": 1},
    "actor": {"id": 7},
    "input": {"period": "day"},
    "job": {
        "id": 9,
        "attempt": 1,
        "max_attempts": 3,
        "queue": "q",
        "priority": 2,
        "inserted_at": datetime(2026, 1, 1, tzinfo=UTC),
    },
    "tenant": "acme",
    "resource": "orders",
    "trigger": "process",
    "schedule": "nightly",
    "action": "notify",
}

CONFIG = """
version: 1
resources:
  orders:
    table: public.orders
    actions:
      notify:
        http:
          url: "http://127.0.0.1:8371/{resource}/{primary_key.id}/{trigger}/{action}"
          headers: {X-Priority: "{job.priority}", X-Attempt: "{job.attempt}"}
          body: {record: "{record.id}", tenant: "{tenant}"}
      report:
        http: {url: "http://127.0.0.1:8371/{resource}/{schedule}/{action}?j={job.id}"}
    triggers:
      process: {action: notify}
    scheduled_actions:
      nightly: {cron: "@daily", action: report}
"""


def test_every_documented_placeholder_checks_and_renders() -> None:
    """The documented placeholders have no problem and each gets its value."""
    assert check_template(DOCUMENTED) == []
    rendered = render_text(DOCUMENTED, VALUES)
    assert rendered.startswith("1 c 1 7 day 9 1 3 q 2 2026-01-01T00:00:00+00:00 acme")
    assert rendered.endswith("orders process nightly notify {literal}")


def test_a_config_using_them_is_valid() -> None:
    """`{primary_key.x}`, `{resource}`, `{trigger}`, `{action}`, `{job.priority}` in a
    trigger's action and `{schedule}` in a scheduled action's pass `jobd check`."""
    spec = load_config_text(CONFIG, "t.yaml", env={})
    assert set(spec.resources["orders"].actions) == {"notify", "report"}


@pytest.mark.parametrize(
    ("template", "roots", "found"),
    [
        (
            {"u": "/{record.id}/{record.id}", "b": ["{trigger}"]},
            ROW_ROOTS,
            ["{record.id}", "{trigger}"],
        ),
        ("/{schedule}/{tenant}", SCHEDULE_ROOTS, ["{schedule}"]),
        ("/{tenant}/{{record.id}}", ROW_ROOTS, []),
    ],
)
def test_uses_lists_the_placeholders_of_given_roots(
    template: object, roots: frozenset[str], found: list[str]
) -> None:
    """`uses` walks strings, mappings and lists, once per placeholder, escapes excluded."""
    assert uses(template, roots) == found


def test_a_scheduled_action_cannot_use_the_row() -> None:
    """A scheduled action whose action renders `{record.x}` is refused at the action key."""
    bad = CONFIG.replace(
        'nightly: {cron: "@daily", action: report}', 'nightly: {cron: "@daily", action: notify}'
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(bad, "t.yaml", env={})
    (problem,) = caught.value.problems
    assert problem.path == "resources.orders.scheduled_actions.nightly.action"
    assert "{primary_key.id}, {trigger}, {record.id}" in problem.message
