"""The JSON Schema of the configuration: the single source of truth for keys and defaults.

The file ships inside the package, beside this loader (`jobd/config/jobd.schema.json`);
`schema/jobd.schema.json` in the repository is a symlink to it for editors. Defaults the
model applies are read from here (`defaults`), so the schema and the model cannot drift
apart.

Two readers, one file. An editor validates the file as written, before `${VAR}` is
replaced, so every field that takes a number, a boolean, a choice or a pattern also
accepts a reference: `anyOf: [<the rule>, {$ref: "#/$defs/interpolated"}]`. jobd
validates after replacing, when a `${` left in a value is text the user wrote (`$${`), not
a reference: `validator()` and the lookups here use the schema with those alternatives
taken out (`without_references`), so the rule itself judges, with its own messages.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_FILE = "jobd.schema.json"


@cache
def schema_text() -> str:
    """The schema file as shipped (what `jobd schema` prints)."""
    return resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def schema() -> dict[str, Any]:
    """The schema as a fresh dict (callers may change their copy)."""
    loaded: dict[str, Any] = json.loads(schema_text())
    return loaded


REFERENCE = {"$ref": "#/$defs/interpolated"}


def without_references(node: Any) -> Any:
    """`node` with every `anyOf: [rule, REFERENCE]` replaced by the rule itself."""
    if isinstance(node, list):
        return [without_references(item) for item in node]
    if not isinstance(node, dict):
        return node
    alternatives = node.get("anyOf")
    if isinstance(alternatives, list) and len(alternatives) == 2 and alternatives[1] == REFERENCE:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return without_references({**rest, **alternatives[0]})
    return {key: without_references(value) for key, value in node.items()}


@cache
def _cached_schema() -> dict[str, Any]:
    resolved: dict[str, Any] = without_references(schema())
    return resolved


@cache
def validator() -> Draft202012Validator:
    """One validator for the process (building it compiles the schema's references)."""
    return Draft202012Validator(_cached_schema())


def definition(name: str) -> dict[str, Any]:
    """A schema under `$defs` (e.g. "trigger"), or the top level for "" ."""
    root = _cached_schema()
    found: dict[str, Any] = root["$defs"][name] if name else root
    return found


def subschema(*path: str) -> dict[str, Any]:
    """Follow `properties` through a definition: subschema("", "engine", "retention")."""
    node = definition(path[0])
    for key in path[1:]:
        node = node["properties"][key]
        if "$ref" in node and "properties" not in node:
            node = definition(node["$ref"].rsplit("/", 1)[1])
    return node


def defaults(*path: str) -> dict[str, Any]:
    """The `default` of every property of the object at `path` that declares one."""
    properties = subschema(*path).get("properties", {})
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}
