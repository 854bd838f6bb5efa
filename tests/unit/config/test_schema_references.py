"""`${VAR}` in the published schema: an editor validates the file as written, before jobd
replaces references, so every field that may hold one accepts it; jobd itself validates
after replacing, with the rule alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from jobd.config import load_config_text
from jobd.config.schema import REFERENCE, schema, without_references
from jobd.errors import ConfigError

ROOT = Path(__file__).parents[3]
PUBLISHED = ROOT / "schema" / "jobd.schema.json"


def test_example_is_valid_under_the_published_schema_alone() -> None:
    """config.example.yaml, as an editor sees it (${VAR} not replaced), has no error under
    schema/jobd.schema.json: no false alarm in yaml-language-server."""
    published = yaml.safe_load(PUBLISHED.read_text(encoding="utf-8"))
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in Draft202012Validator(published).iter_errors(example)
    ]
    assert errors == []


def _value_schemas(node: Any, root: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """Every schema a scalar value in the file is checked against: properties, list items
    and mapping values, through definitions and alternatives."""
    if not isinstance(node, dict):
        return
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _value_schemas(sub, root, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield f"{path}[{key}]", node[key]
            yield from _value_schemas(node[key], root, f"{path}[{key}]")
    for key in ("oneOf", "anyOf"):
        for index, branch in enumerate(node.get(key, [])):
            yield from _value_schemas(branch, root, f"{path}|{index}")


def _scalar(node: Any, root: dict[str, Any]) -> bool:
    """Whether a schema takes a scalar (a string, number, boolean or a choice of them)."""
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    if "type" in node:
        types = {node["type"]} if isinstance(node["type"], str) else set(node["type"])
        return bool(types - {"object", "array"})
    if "anyOf" in node or "oneOf" in node:
        return any(_scalar(b, root) for b in node.get("anyOf", node.get("oneOf", [])))
    return True


def test_every_scalar_field_accepts_a_reference() -> None:
    """Each field that takes a number, boolean, choice or pattern also takes `${NAME}` and
    `${NAME:-default}`: interpolation applies to every value."""
    root = schema()
    places = [("", root)] + [(f"$defs.{k}", v) for k, v in root["$defs"].items()]
    refused = []
    for start, node in places:
        for path, sub in _value_schemas(node, root, start):
            if not _scalar(sub, root):
                continue
            check = Draft202012Validator({"$defs": root["$defs"], **sub})
            for value in ("${SOME_VAR}", "${SOME_VAR:-10}"):
                if not check.is_valid(value):
                    refused.append(f"{path}: {value}")
    assert refused == []


def test_jobd_validates_with_the_rule_alone() -> None:
    """The schema jobd validates with has no reference alternative left, and a `${`
    written as text (`$${X}`, which becomes `${X}`) in an integer field is an error."""
    assert str(REFERENCE) not in str(without_references(schema()))
    with pytest.raises(ConfigError) as caught:
        load_config_text("version: 1\ndatabase:\n  pool_size: $${X}\n", "t.yaml", env={})
    assert [str(p) for p in caught.value.problems] == [
        't.yaml:3:14: database.pool_size: must be an integer (got string "${X}")'
    ]
