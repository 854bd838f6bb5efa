"""YAML text -> plain data that remembers where every key and value was written.

PyYAML composes the node graph (with the C parser when present); we walk it ourselves so
that each value keeps its line and column, duplicate keys are caught at the duplicate,
unknown tags and recursive aliases are errors instead of surprises, and `${VAR}` /
`${VAR:-default}` are replaced in every scalar string before anything is validated.

Interpolation rules (see docs/configuration.md):
- `${NAME}` is the variable's value; unset is an error naming it. `${NAME:-default}` uses
  the default when NAME is unset or empty. `$${` writes a literal `${`.
- Keys are never interpolated. Results are strings; a value that is exactly one reference
  is converted to the integer/number/boolean the schema expects there (see validate.py).
- A mapping value that is exactly one reference and comes out empty counts as absent, so
  `url: ${DATABASE_URL:-}` means "no url" when the variable is unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
import yaml.reader
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from jobd.errors import Problem

Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KeyPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column

MAX_NODES = 100_000  # guards against alias bombs ("billion laughs")
MAX_DEPTH = 50  # far beyond any real configuration; keeps every later recursion bounded
_STR_TAG = "tag:yaml.org,2002:str"
_RAW_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}
_SAFE_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
}
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


class _Absent:
    """Marks a mapping value that interpolated to nothing (the key is dropped)."""


_ABSENT = _Absent()


@dataclass
class Document:
    """Loaded data plus where each piece came from (paths use str keys and int indexes)."""

    data: Any
    values: dict[KeyPath, Position] = field(default_factory=dict)
    keys: dict[KeyPath, Position] = field(default_factory=dict)
    whole_references: set[KeyPath] = field(default_factory=set)

    def position(self, path: KeyPath, *, prefer_key: bool = False) -> Position:
        """Where `path` was written, or its nearest written ancestor."""
        while True:
            table = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            for positions in table:
                if path in positions:
                    return positions[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def format_path(path: KeyPath) -> str:
    """resources.orders.reads.x.sort[0]"""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load_document(
    text: str, filename: str, env: Mapping[str, str]
) -> tuple[Document | None, list[Problem]]:
    """Parse `text`; returns the document (None when YAML itself failed) and problems."""
    try:
        root = yaml.compose(text, Loader=Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        reason = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and not exc.context.startswith("while"):
            reason = f"{exc.context}, {exc.problem}"
        return None, [Problem(filename, line, column, "", f"invalid YAML: {reason}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or "?")
        reason = f"character #x{code:04x} is not allowed in YAML"
        return None, [Problem(filename, line, column, "", f"invalid YAML: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(filename, 0, 0, "", f"invalid YAML: {exc}")]
    except RecursionError:  # the pure-Python parser on absurd nesting
        return None, [Problem(filename, 0, 0, "", "invalid YAML: nested too deeply")]
    if root is None:
        return Document(None), []
    walker = _Walker(filename, text, env)
    try:
        data = walker.node(root, ())
    except _TooLarge:
        return None, [Problem(filename, 1, 1, "", f"document too large (over {MAX_NODES} nodes)")]
    return walker.document(data), walker.problems


class _TooLarge(Exception):
    pass


def _position(node: Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """Turns nodes into plain data, recording positions and problems as it goes."""

    def __init__(self, filename: str, text: str, env: Mapping[str, str]) -> None:
        self.filename, self.lines, self.env = filename, text.splitlines(), env
        self.problems: list[Problem] = []
        self.values: dict[KeyPath, Position] = {}
        self.keys: dict[KeyPath, Position] = {}
        self.whole: set[KeyPath] = set()
        self.constructor = SafeConstructor()
        self.active: set[int] = set()
        self.checked_maps: set[int] = set()
        self.budget = MAX_NODES

    def document(self, data: Any) -> Document:
        return Document(None if data is _ABSENT else data, self.values, self.keys, self.whole)

    def problem(self, position: Position, path: KeyPath, message: str) -> None:
        self.problems.append(Problem(self.filename, *position, format_path(path), message))

    def node(self, node: Node, path: KeyPath, in_mapping: bool = False) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge
        self.values[path] = _position(node)
        if len(path) > MAX_DEPTH:
            self.problem(_position(node), path, f"nested too deeply (over {MAX_DEPTH} levels)")
            return None
        if id(node) in self.active:
            self.problem(_position(node), path, "recursive alias (*) is not allowed")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                items = (self.node(item, (*path, i)) for i, item in enumerate(node.value))
                return [item for item in items if item is not _ABSENT]
            assert isinstance(node, ScalarNode)
            return self.scalar(node, path, in_mapping)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        if id(node) not in self.checked_maps:
            self.checked_maps.add(id(node))
            self.check_duplicates(node, path)
            try:
                self.constructor.flatten_mapping(node)  # resolves `<<: *anchor` merges
            except yaml.YAMLError as exc:
                self.problem(_position(node), path, f"invalid merge (<<): {exc}")
                return {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(_position(key_node), path, "keys must be plain strings")
                continue
            key_path = (*path, key_node.value)
            self.keys[key_path] = _position(key_node)
            value = self.node(value_node, key_path, in_mapping=True)
            if value is _ABSENT:
                result.pop(key_node.value, None)
            else:
                result[key_node.value] = value
        return result

    def check_duplicates(self, node: MappingNode, path: KeyPath) -> None:
        first: dict[str, Position] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            here = _position(key_node)
            if key_node.value in first:
                line, column = first[key_node.value]
                self.problem(
                    here,
                    (*path, key_node.value),
                    f"duplicate key '{key_node.value}' (first defined at line {line}, "
                    f"column {column})",
                )
            else:
                first[key_node.value] = here

    def scalar(self, node: ScalarNode, path: KeyPath, in_mapping: bool) -> Any:
        if node.tag == _STR_TAG:
            if "${" not in node.value:
                return node.value
            return self.interpolate(node, path, in_mapping)
        if node.tag in _RAW_TAGS:
            return node.value  # dates and binary stay text; no key expects them
        if node.tag in _SAFE_TAGS:
            return self.constructor.construct_object(node, deep=True)
        self.problem(_position(node), path, f"unsupported YAML tag '{node.tag}'")
        return None

    def interpolate(self, node: ScalarNode, path: KeyPath, in_mapping: bool) -> Any:
        text: str = node.value
        whole = _REFERENCE.fullmatch(text) is not None and not text.startswith("$${")
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            reference = match.group(0)
            if reference == "$${":
                return "${"
            body = _BODY.fullmatch(match.group(1) or "") if match.group(1) is not None else None
            if body is None:
                failed = True
                self.problem(
                    self.reference_position(node, reference),
                    path,
                    f"malformed reference {reference!r}: use ${{NAME}} or ${{NAME:-default}}",
                )
                return ""
            name, default = body.group(1), body.group(2)
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                failed = True
                self.problem(
                    self.reference_position(node, reference),
                    path,
                    f"environment variable '{name}' is not set "
                    f"(write ${{{name}:-default}} to give a default)",
                )
                return ""
            return value

        result = _REFERENCE.sub(replace, text)
        if failed:
            return None
        if whole:
            self.whole.add(path)
            if result == "" and in_mapping:
                return _ABSENT
        return result

    def reference_position(self, node: ScalarNode, reference: str) -> Position:
        """The reference's own line:column when it sits on the node's first line."""
        line = node.start_mark.line
        if line < len(self.lines):
            column = self.lines[line].find(reference, node.start_mark.column)
            if column >= 0:
                return line + 1, column + 1
        return _position(node)
