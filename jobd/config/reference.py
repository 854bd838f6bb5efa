"""The key reference of docs/configuration.md, generated from the JSON Schema.

    python -m jobd.config.reference docs/configuration.md   # rewrite the generated block

The block between the BEGIN/END markers is replaced; a unit test fails when the document
and the schema disagree, so the reference can never drift from what `jobd check` accepts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jobd.config.schema import definition

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m jobd.config.reference) -->"
END = "<!-- END GENERATED REFERENCE -->"

_NAMED_TYPES = {
    "duration": "duration",
    "positive_duration": "duration > 0",
    "cron": "cron",
    "identifier": "identifier",
    "entrypoint": "entrypoint",
    "name": "name",
    "sql_expression": "SQL expression",
    "json_object": "mapping",
    "tenants": "tenants",
    "actor_persister": "actor persister",
    "backoff": "backoff",
    "state": "state",
    "set_value": "set value",
    "queue": "queue",
    "status": "status",
}


def _resolve(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    ref = schema.get("$ref")
    if not ref:
        return schema, None
    name = ref.rsplit("/", 1)[1]
    return {**definition(name), **{k: v for k, v in schema.items() if k != "$ref"}}, name


def _type(schema: dict[str, Any], ref: str | None) -> str:
    if ref in _NAMED_TYPES:
        return _NAMED_TYPES[ref]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(*_resolve(s)) for s in schema[key])
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join("list" if k == "array" else "mapping" if k == "object" else k for k in kinds)
    if "items" in schema:
        text += f" of {_type(*_resolve(schema['items']))}"
    return text


def _rows(schema: dict[str, Any], path: str, rows: list[str], seen: set[str]) -> None:
    """One row per property under `schema`, depth first."""
    for key, raw in schema.get("properties", {}).items():
        prop, ref = _resolve(raw)
        here = f"{path}.{key}" if path else key
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        text = prop.get("description", "").replace("|", "\\|")
        rows.append(f"| `{here}` | {_type(prop, ref)} | {default} | {text} |")
        _descend(prop, ref, here, rows, seen)


def _descend(
    prop: dict[str, Any], ref: str | None, here: str, rows: list[str], seen: set[str]
) -> None:
    if ref is not None and ref in seen:
        return  # shared definitions (actor_persister, tenants, ...) are described once
    if ref is not None:
        seen.add(ref)
    if "properties" in prop:
        _rows(prop, here, rows, seen)
    item = prop.get("additionalProperties")
    if isinstance(item, dict):
        item_schema, item_ref = _resolve(item)
        if "properties" not in item_schema:  # leaf maps (queues, set, headers): one row
            text = item_schema.get("description", "").replace("|", "\\|")
            rows.append(f"| `{here}.<name>` | {_type(item_schema, item_ref)} |  | {text} |")
        _descend(item_schema, item_ref, f"{here}.<name>", rows, seen)
    for branch in prop.get("oneOf", []) + prop.get("anyOf", []):
        branch_schema, branch_ref = _resolve(branch)
        if "properties" in branch_schema:
            _descend(branch_schema, branch_ref, here, rows, seen)


def render_reference() -> str:
    """The generated markdown block, markers included."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    _rows(definition(""), "", rows, set())
    types = [
        "",
        "Types: *duration* is `250ms`, `10s`, `5m`, `2h`, `7d` or a number of seconds; *name* is",
        "letters, digits, `_` and `-`; *identifier* is a plain Postgres identifier; *entrypoint*",
        'is `"package.module:callable"`; *status* is `200` or a class such as `"5xx"`.',
    ]
    return "\n".join([BEGIN, "", *rows, *types, "", END])


def replace_block(document: str) -> str:
    start, end = document.index(BEGIN), document.index(END) + len(END)
    return document[:start] + render_reference() + document[end:]


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/configuration.md")
    path.write_text(replace_block(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
