"""Schema validation with messages a person can act on, each at the line that caused it.

jsonschema reports in its own words; here every error becomes one short message located at
the node its path points to. `additionalProperties` becomes "unknown key 'X' (did you mean
'Y'?)"; a failed `oneOf`/`anyOf` is explained through the one branch whose type fits the
value (or summed up in one line); a schema may word a message itself with `x-messages`.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

from jsonschema.exceptions import ValidationError

from jobd.config.schema import validator
from jobd.config.yamlload import Document, KeyPath, format_path
from jobd.errors import Problem
from jobd.sql.dsn import redact

_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def schema_problems(doc: Document, filename: str) -> tuple[list[Problem], set[KeyPath]]:
    """Validate `doc.data` (converting whole `${VAR}` values where a number is expected).

    Returns the problems and the paths they were found at, so semantic checks can skip the
    parts that are already known to be broken.
    """
    if doc.data is None:
        return [Problem(filename, 1, 1, "", "the file is empty; it needs at least 'version: 1'")], {
            ()
        }
    errors = list(validator().iter_errors(doc.data))
    if errors and _convert_references(errors, doc):
        errors = list(validator().iter_errors(doc.data))
    problems: dict[tuple[int, int, str, str], Problem] = {}
    paths: set[KeyPath] = set()
    for error in errors:
        for path, prefer_key, message in _explain(error):
            line, column = doc.position(path, prefer_key=prefer_key)
            problem = Problem(filename, line, column, format_path(path), message)
            problems.setdefault((line, column, problem.path, message), problem)
            paths.add(path)
    return [problems[key] for key in sorted(problems)], paths


def _all_errors(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    for error in errors:
        yield error
        yield from _all_errors(error.context or ())


def _convert_references(errors: list[ValidationError], doc: Document) -> bool:
    """Turn `"8080"` from a whole `${PORT}` into 8080 where the schema wants a number."""
    changed = False
    for error in _all_errors(errors):
        path = tuple(error.absolute_path)
        if error.validator != "type" or path not in doc.whole_references:
            continue
        if not isinstance(error.instance, str):
            continue
        wanted: Any = error.validator_value
        types = [wanted] if isinstance(wanted, str) else list(wanted)
        converted = _convert(error.instance, types)
        if converted is not None:
            _assign(doc.data, path, converted)
            doc.whole_references.discard(path)
            changed = True
    return changed


def _convert(text: str, types: list[str]) -> int | float | bool | None:
    stripped = text.strip()
    if "boolean" in types and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    if ("integer" in types or "number" in types) and re.fullmatch(r"[+-]?[0-9]+", stripped):
        return int(stripped)
    if "number" in types:
        try:
            number = float(stripped)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _assign(data: Any, path: KeyPath, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def _explain(error: ValidationError) -> Iterator[tuple[KeyPath, bool, str]]:
    """(path, locate at the key rather than the value, message) for one error."""
    path: KeyPath = tuple(error.absolute_path)
    kind = error.validator
    if kind in ("oneOf", "anyOf") and error.context:
        branch = _fitting_branch(error)
        own = _custom(error)
        # a scalar that fits one alternative's type but not its rule reads better as the
        # alternatives' summary; a mapping or list is explained through its branch
        scalar = not isinstance(error.instance, dict | list)
        if branch is not None and not (own and scalar and all(not s.relative_path for s in branch)):
            for sub in branch:
                yield from _explain(sub)
            return
        if own:
            yield path, False, f"{own} (got {_kind(error.instance)})"
            return
    if "propertyNames" in error.relative_schema_path:
        # the instance is the offending key itself; point at the key
        key = str(error.instance)
        yield (*path, key), True, _custom(error) or f"invalid name {_show(key)}"
        return
    if kind == "additionalProperties":
        yield from _unknown_keys(error, path)
        return
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "?"
        yield path, True, f"missing required key '{missing}'"
        return
    message = _custom(error) or _default_message(error)
    yield path, False, message if path else f"the top level {message}"


def _fitting_branch(error: ValidationError) -> list[ValidationError] | None:
    """The errors of the only alternative whose type fits the value, if exactly one does."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    fitting = [
        subs
        for subs in branches.values()
        if not any(s.validator == "type" and not s.relative_path for s in subs)
    ]
    return fitting[0] if len(fitting) == 1 else None


def _unknown_keys(error: ValidationError, path: KeyPath) -> Iterator[tuple[KeyPath, bool, str]]:
    schema: Any = error.schema
    known = list(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    instance = error.instance if isinstance(error.instance, dict) else {}
    for key in instance:
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        message = f"unknown key '{key}'"
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            message += f" (did you mean '{close[0]}'?)"
        elif 0 < len(known) <= 12:
            message += f" (expected one of: {', '.join(known)})"
        yield (*path, key), True, message


def _custom(error: ValidationError) -> str | None:
    """A message the schema words itself, under `x-messages` by failed keyword:
    `{instance}` is the value, `{url}` the value with any password masked, `{got}` its
    kind."""
    messages = error.schema.get("x-messages") if isinstance(error.schema, dict) else None
    if not isinstance(messages, dict) or str(error.validator) not in messages:
        return None
    template: str = messages[str(error.validator)]
    url = redact(error.instance) if isinstance(error.instance, str) else error.instance
    return (
        template.replace("{instance}", _show(error.instance))
        .replace("{url}", _show(url))
        .replace("{got}", _kind(error.instance))
    )


def _secret(error: ValidationError) -> bool:
    """The schema marks the value secret (`x-secret`): a message names its kind only."""
    return isinstance(error.schema, dict) and bool(error.schema.get("x-secret"))


def _default_message(error: ValidationError) -> str:
    kind, instance = error.validator, error.instance
    value: Any = error.validator_value
    secret = _secret(error)  # say what kind of value it is, never the value
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted if t != "null")
        got = _TYPE_NAMES[_json_type(instance)] if secret else _kind(instance)
        return f"must be {names} (got {got})"
    if secret:
        return "is not valid here (a secret: its value is not shown)"
    if kind == "enum":
        choices = ", ".join(str(v) for v in value)
        message = f"must be one of: {choices} (got {_show(instance)})"
        close = difflib.get_close_matches(str(instance), [str(v) for v in value], n=1)
        return message + (f"; did you mean '{close[0]}'?" if close else "")
    if kind == "const":
        return f"must be {_show(value)} (got {_show(instance)})"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">"}.get(kind, "<")
        return f"must be {relation} {value} (got {_show(instance)})"
    if kind == "minItems":
        return "must not be empty" if value == 1 else f"needs at least {value} items"
    if kind == "minProperties":
        return "must not be empty"
    if kind == "minLength":
        return "must not be empty"
    if kind == "maxLength":
        return f"is too long (at most {value} characters)"
    if kind == "uniqueItems":
        return "must not contain duplicates"
    if kind == "pattern":
        return f"{_show(instance)} does not match {value}"
    if kind in ("oneOf", "anyOf"):
        return f"{_show(instance)} is not valid here"
    return error.message


def _show(value: Any) -> str:
    """A value as it would appear in YAML/JSON, shortened."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_type(value: Any) -> str:
    """The JSON Schema type name of a value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "integer" if isinstance(value, int) else "number"
    if isinstance(value, dict | list | str):
        return {dict: "object", list: "array", str: "string"}[type(value)]
    return "null"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"string {_show(value)}"
    return f"{_show(value)}"
