"""The placeholders of HTTP action templates: what `{...}` may name, and where.

    parse("/orders/{record.id}?t={tenant}")   # (['/orders/', Placeholder(...), ...], [])
    check_template("{row.id}")                 # ['unknown placeholder {row.id}: use ...']

One grammar for the configuration's checks (`jobd check`) and the renderer
(`jobd.actions.templates`), so what one accepts the other fills:
- `{record.<column>}`, `{primary_key.<column>}`, `{actor.<field>}`, `{input.<key>}`;
  deeper paths walk into JSON values (`{record.payload.customer}`);
- `{job.id}`, `{job.attempt}`, `{job.max_attempts}`, `{job.queue}`, `{job.priority}`,
  `{job.inserted_at}`;
- `{tenant}`, `{resource}`, `{trigger}`, `{schedule}`, `{action}`, `{event}` (the change
  that enqueued a trigger's job: insert, update or delete; empty for the scan's jobs).
`{{` and `}}` stand for literal braces; a lone brace is an error.

A scheduled action runs for no row and no trigger: `{record.x}`, `{primary_key.x}`,
`{trigger}` and `{event}` have no value there; a trigger's action has no `{schedule}`.
`row_only` and `schedule_only` say which placeholders a template uses that its runs
cannot fill.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PATH_ROOTS = frozenset({"record", "primary_key", "actor", "input"})
JOB_FIELDS = ("id", "attempt", "max_attempts", "queue", "priority", "inserted_at")
NAMES = frozenset({"tenant", "resource", "trigger", "schedule", "action", "event"})
HELP = (
    "{record.COLUMN}, {primary_key.COLUMN}, {actor.FIELD}, {input.KEY}, "
    f"{{job.{'|'.join(JOB_FIELDS)}}}, {{tenant}}, {{resource}}, {{trigger}}, {{schedule}}, "
    "{action} or {event}"
)
ROW_ROOTS = frozenset({"record", "primary_key", "trigger", "event"})  # a trigger's runs only
SCHEDULE_ROOTS = frozenset({"schedule"})  # a scheduled action's runs only

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


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
    return [problem for _, text in strings(template) for problem in check_template(text)]


def strings(template: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, str]]:
    """(key path, text) of every string in a template (a string, mapping or list)."""
    if isinstance(template, str):
        yield path, template
    elif isinstance(template, Mapping):
        for key, value in template.items():
            yield from strings(value, (*path, key))
    elif isinstance(template, list | tuple):
        for index, value in enumerate(template):
            yield from strings(value, (*path, index))


def placeholders(text: str) -> list[Placeholder]:
    """The valid placeholders of `text` (the invalid ones are `check_template`'s)."""
    return [part for part in parse(text)[0] if isinstance(part, Placeholder)]


def uses(template: Any, roots: frozenset[str]) -> list[str]:
    """The placeholders of `template` whose first name is one of `roots`, as written."""
    found = [f"{{{p.text}}}" for _, text in strings(template) for p in placeholders(text)]
    return [text for text in dict.fromkeys(found) if text[1:-1].split(".")[0] in roots]
