"""The JSON Schema of the configuration: the single source of truth for keys and defaults.

The file ships inside the package, beside this loader (`jobd/config/jobd.schema.json`);
`schema/jobd.schema.json` in the repository is a symlink to it for editors. Defaults the
model applies are read from here (`defaults`), so the schema and the model cannot drift
apart.
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


@cache
def _cached_schema() -> dict[str, Any]:
    return schema()


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
