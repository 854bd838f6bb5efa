"""Random input never crashes the loader: it ends in a Spec or in a ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobd.config import load_config_text
from jobd.errors import ConfigError
from jobd.model import Spec

EXAMPLE = Path(__file__).parents[3] / "config.example.yaml"

# Keys the format knows, so random structures often reach deep validation and semantics.
KEYS = [
    "version",
    "database",
    "url",
    "schema",
    "pool_size",
    "node",
    "log",
    "format",
    "level",
    "admin",
    "listen",
    "token",
    "engine",
    "retention",
    "queues",
    "limit",
    "global_limit",
    "actor_persister",
    "store",
    "lookup",
    "sql",
    "args",
    "python",
    "list_tenants",
    "resources",
    "orders",
    "table",
    "primary_key",
    "multitenancy",
    "strategy",
    "attribute",
    "actions",
    "http",
    "update",
    "set",
    "method",
    "headers",
    "reads",
    "where",
    "sort",
    "triggers",
    "action",
    "scheduler_cron",
    "queue",
    "backoff",
    "fixed",
    "exponential",
    "scheduled_actions",
    "cron",
    "timezone",
    "on_success",
    "on_error",
    "input",
    "error",
    "response",
    "literal",
    "worker_name",
    "${X}",
    "<<",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "1",
            "1s",
            "0s",
            "* * * * *",
            "@hourly",
            "x",
            "${X}",
            "${Y:-1}",
            "${",
            "$${Z}",
            "public.orders",
            "now()",
            "a = 1",
            "(select 1)",
            "UTC",
            "Mars/Olympus",
            "off",
            "http://h/{record.id}",
            "m:f",
            "process",
            "orders",
            "attribute",
            "schema",
            "",
        ]
    ),
    st.text(max_size=12),
)
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5),
    ),
    max_leaves=40,
)


def _outcome(text: str) -> None:
    try:
        result = load_config_text(text, "fuzz.yaml", env={"X": "5"})
    except ConfigError as exc:
        assert exc.problems, "a ConfigError always lists at least one problem"
        for problem in exc.problems:
            assert str(problem).startswith("fuzz.yaml")
    else:
        assert isinstance(result, Spec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STRUCTURES)
def test_random_structures_end_in_spec_or_config_error(data: Any) -> None:
    """Any YAML-able structure, dumped and loaded, gives a Spec or a ConfigError only."""
    _outcome(yaml.safe_dump(data, allow_unicode=True))
    if isinstance(data, dict):
        _outcome(yaml.safe_dump({"version": 1, **data}, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_ends_in_spec_or_config_error(text: str) -> None:
    """Arbitrary text (mostly broken YAML) gives a Spec or a ConfigError only."""
    _outcome(text)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_example_ends_in_spec_or_config_error(data: st.DataObject) -> None:
    """The example with one line replaced by random text still never crashes the loader."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = data.draw(st.text(max_size=40) | st.sampled_from(KEYS).map(lambda k: k + ":"))
    _outcome("\n".join(lines))
