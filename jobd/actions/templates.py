"""Templates of HTTP actions: `{record.x}`, `{tenant}`, `{actor.x}`, `{input.x}`, `{job.id}`.

Placeholders (in URLs, header values and string values of a `body` mapping):
- `{record.<column>}`, `{primary_key.<column>}`, `{actor.<field>}`, `{input.<key>}`;
  deeper paths walk into JSON values (`{record.payload.customer}`);
- `{job.id}`, `{job.attempt}`, `{job.max_attempts}`, `{job.queue}`, `{job.priority}`,
  `{job.inserted_at}`;
- `{tenant}`, `{resource}`, `{trigger}`, `{schedule}`, `{action}`.
`{{` and `}}` stand for literal braces.

Rendering: in a URL every value is percent-encoded with `quote(value, safe="")`, so a key
of `../admin?x=1` stays inside its path segment (`..%2Fadmin%3Fx%3D1`); the template's own
text is left as written. In a header a value may not contain CR or LF. A body string that
is exactly one placeholder keeps the value's JSON type (`"{record.amount}"` -> 12.5);
otherwise values are interpolated as text. A value that is missing (or null, except for a
whole-string body placeholder) is a `TemplateError`; messages name placeholders, never
values. Values become text as JSON would spell them: `true`, `12.5`, ISO dates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from jobd.common.jsontext import json_text
from jobd.errors import JobdError

PATH_ROOTS = frozenset({"record", "primary_key", "actor", "input"})
JOB_FIELDS = frozenset({"id", "attempt", "max_attempts", "queue", "priority", "inserted_at"})
NAMES = frozenset({"tenant", "resource", "trigger", "schedule", "action"})
HELP = "{record.x}, {primary_key.x}, {actor.x}, {input.x}, {job.id}, {tenant}"

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(JobdError):
    """A template is invalid (at start: a configuration error) or could not be rendered
    for a job (a placeholder without a value)."""

    exit_code = 2


@dataclass(frozen=True)
class Placeholder:
    text: str  # as written between the braces
    path: tuple[str, ...]


Part = str | Placeholder


def parse(text: str) -> tuple[list[Part], list[str]]:
    """The literal and placeholder parts of `text`, and every problem found."""
    parts: list[Part] = []
    problems: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        parts.append(text[last : match.start()])
        last = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            parts.append(token[0])
        elif token in ("{", "}"):
            where = match.start() + 1
            problems.append(f"unbalanced {token!r} at character {where} (use {token * 2})")
        else:
            name = match.group(1).strip()
            problem = _check_name(name)
            if problem:
                problems.append(problem)
            parts.append(Placeholder(name, tuple(name.split("."))))
    parts.append(text[last:])
    return [p for p in parts if p != ""], problems


def _check_name(name: str) -> str | None:
    root, _, rest = name.partition(".")
    if root in PATH_ROOTS and rest and all(rest.split(".")):
        return None
    if root == "job" and rest in JOB_FIELDS:
        return None
    if name in NAMES:
        return None
    return f"unknown placeholder {{{name}}}: use {HELP}"


def check_template(text: str) -> list[str]:
    """Problems with a template (unknown placeholders, stray braces); [] when fine."""
    return parse(text)[1]


def check_body(template: Any) -> list[str]:
    """Problems in every string of a body template mapping."""
    if isinstance(template, str):
        return check_template(template)
    if isinstance(template, Mapping):
        return [p for v in template.values() for p in check_body(v)]
    if isinstance(template, list | tuple):
        return [p for v in template for p in check_body(v)]
    return []


def lookup(values: Mapping[str, Any], placeholder: Placeholder) -> Any:
    """The value a placeholder names (None when absent)."""
    node: Any = values
    for step in placeholder.path:
        if isinstance(node, Mapping):
            node = node.get(step)
        elif isinstance(node, list | tuple) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
    return node


def as_text(value: Any) -> str:
    """A value as text, spelled as in JSON (strings unquoted)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    if isinstance(value, Mapping | list | tuple):
        return json_text(value)
    return str(value)


def render_text(
    text: str, values: Mapping[str, Any], encode: Callable[[str], str] = lambda s: s
) -> str:
    """`text` with every placeholder replaced by `encode(value as text)`."""
    parts, problems = parse(text)
    if problems:
        raise TemplateError("; ".join(problems))
    out: list[str] = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = lookup(values, part)
        if value is None:
            raise TemplateError(f"placeholder {{{part.text}}} has no value for this job")
        out.append(encode(as_text(value)))
    return "".join(out)


def encode_url_value(text: str) -> str:
    """Percent-encode everything but unreserved characters; a value of "." or ".." gets
    its dots encoded too, so it can never become a dot segment that climbs the path."""
    encoded = quote(text, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def render_url(template: str, values: Mapping[str, Any]) -> str:
    """A URL template rendered with every value percent-encoded (path-segment safe)."""
    return render_text(template, values, encode_url_value)


def render_header(template: str, values: Mapping[str, Any], name: str) -> str:
    """A header value; a value with CR/LF would split the header, so it is refused."""
    rendered = render_text(template, values)
    if "\r" in rendered or "\n" in rendered:
        raise TemplateError(f"header {name!r} would contain a line break")
    return rendered


def render_body(template: Any, values: Mapping[str, Any]) -> Any:
    """A body template with its strings rendered; a lone placeholder keeps its type."""
    if isinstance(template, str):
        parts, problems = parse(template)
        if not problems and len(parts) == 1 and isinstance(parts[0], Placeholder):
            return lookup(values, parts[0])
        return render_text(template, values)
    if isinstance(template, Mapping):
        return {str(k): render_body(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render_body(v, values) for v in template]
    return template
