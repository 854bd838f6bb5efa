"""Rendering HTTP action templates: `{record.x}`, `{tenant}`, `{actor.x}`, `{input.x}`, ...

What a placeholder may name, and the parsing, are `jobd.config.placeholders` (the same
grammar `jobd check` applies); this module fills them for one job.

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
from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from jobd.common.jsontext import json_text
from jobd.config.placeholders import Placeholder, check_body, check_template, parse
from jobd.errors import JobdError

__all__ = [
    "TemplateError",
    "check_body",
    "check_template",
    "render_body",
    "render_header",
    "render_text",
    "render_url",
]


class TemplateError(JobdError):
    """A template is invalid (at start: a configuration error) or could not be rendered
    for a job (a placeholder without a value)."""

    exit_code = 2


@lru_cache(maxsize=1024)
def parsed(text: str) -> tuple[tuple[str | Placeholder, ...], tuple[str, ...]]:
    """`parse(text)`, kept: templates come from the configuration (a bounded set) and
    are rendered for every job (parsing was a third of an HTTP request's rendering)."""
    parts, problems = parse(text)
    return tuple(parts), tuple(problems)


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
    if type(value) is int:  # the common key: as JSON spells it, without the encoder
        return str(value)
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
    parts, problems = parsed(text)
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
        parts, problems = parsed(template)
        if not problems and len(parts) == 1 and isinstance(parts[0], Placeholder):
            return lookup(values, parts[0])
        return render_text(template, values)
    if isinstance(template, Mapping):
        return {str(k): render_body(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render_body(v, values) for v in template]
    return template
