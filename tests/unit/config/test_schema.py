"""The JSON Schema is well-formed, fully described, and agrees with the model and the docs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from jobd.cli.main import main
from jobd.config import load_config_text
from jobd.config.durations import format_duration, parse_duration_s
from jobd.config.reference import render_reference
from jobd.config.schema import definition, schema, schema_text
from jobd.engine.config import EngineConfig

ROOT = Path(__file__).parents[3]


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, prop in node.get("properties", {}).items():
            yield f"{path}.{key}", prop
        for key, value in node.items():
            if key != "if":  # conditions restate keys, they do not declare them
                yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{path}/{index}")


def test_schema_is_valid_2020_12() -> None:
    """The shipped schema is itself valid under the 2020-12 meta-schema."""
    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_repository_symlink_points_at_shipped_schema() -> None:
    """schema/jobd.schema.json (for editors) is the very file the package ships."""
    link = ROOT / "schema" / "jobd.schema.json"
    assert link.is_symlink()
    assert link.read_text(encoding="utf-8") == schema_text()


def test_every_property_has_a_description() -> None:
    """Editors show help on hover for every key."""
    missing = [path for path, prop in _properties(schema()) if not prop.get("description")]
    assert missing == []


def test_every_object_forbids_unknown_keys() -> None:
    """`additionalProperties` is false, or a schema for named entries, on every object."""

    def objects(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            if "properties" in node:
                yield path, node
            for key, value in node.items():
                if key != "if":
                    yield from objects(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from objects(value, f"{path}/{index}")

    loose = [p for p, o in objects(schema()) if o.get("additionalProperties") is not False]
    assert loose == []


def test_defaults_validate_against_their_own_property() -> None:
    """Each declared default is a value the schema accepts at that place."""
    root = schema()
    for path, prop in _properties(root):
        if "default" in prop:
            sub = {**prop, "$defs": root["$defs"]}
            errors = list(Draft202012Validator(sub).iter_errors(prop["default"]))
            assert errors == [], path


def _plain(value: Any) -> Any:
    """A model value as JSON has it (mappings as dicts, tuples as lists)."""
    if isinstance(value, tuple):
        return list(value)
    return dict(value) if isinstance(value, dict) else value


def test_minimal_config_gets_schema_defaults() -> None:
    """A trigger and schedule with only required keys carry exactly the schema's defaults."""
    spec = load_config_text(
        "version: 1\nresources:\n  r:\n    table: t\n    actions: {a: {python: 'm:f'}}\n"
        "    triggers: {t: {action: a}}\n"
        "    scheduled_actions: {s: {cron: '@daily', action: a}}\n",
        env={},
    )
    trigger = spec.resources["r"].triggers["t"]
    for key, default in definition("trigger")["properties"].items():
        if "default" not in default or key in ("backoff", "discard_cooldown"):
            continue
        value = getattr(trigger, key)
        expected = default["default"]
        assert _plain(value) == expected, key
    assert trigger.discard_cooldown_s == parse_duration_s("1h")
    assert trigger.backoff.kind == "exponential"
    schedule = spec.resources["r"].scheduled_actions["s"]
    for key in ("timezone", "priority", "max_attempts", "state", "overlap", "catch_up"):
        assert getattr(schedule, key) == definition("schedule")["properties"][key]["default"]
    engine = definition("")["properties"]["engine"]["properties"]
    assert spec.engine.heartbeat_s == parse_duration_s(engine["heartbeat"]["default"])
    assert spec.engine.max_rescues == engine["max_rescues"]["default"] == EngineConfig.max_rescues
    assert (
        spec.database.pool_size
        == definition("")["properties"]["database"]["properties"]["pool_size"]["default"]
    )


@given(st.integers(0, 10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_duration_pattern_and_parser_agree(count: int, unit: str) -> None:
    """Every spelling the schema's duration pattern accepts, parse_duration_s parses."""
    text = f"{count}{unit}"
    validator = Draft202012Validator(definition("duration"))
    assert validator.is_valid(text)
    assert parse_duration_s(text) >= 0
    assert parse_duration_s(format_duration(parse_duration_s(text))) == pytest.approx(
        parse_duration_s(text)
    )


def test_jobd_schema_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """`jobd schema` prints valid JSON equal to the shipped file."""
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema()


def test_docs_reference_is_in_sync_with_schema() -> None:
    """docs/configuration.md carries the reference generated from the current schema."""
    document = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert render_reference() in document, "run: python -m jobd.config.reference"
