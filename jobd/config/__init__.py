"""Load, validate and build the configuration: YAML -> schema -> semantic checks -> model.

    spec = load_config("jobd.yaml")            # raises ConfigError listing every problem
    spec = load_config_text(text, "t.yaml", env={"DATABASE_URL": "..."})
    spec, locate = load_located("jobd.yaml")   # and where each key was written, for
    raise ConfigError(locate(findings))         # problems found later (jobd check --db)

Each stage reports every problem it finds at file:line:column with the key path; a later
stage only looks at the parts an earlier one accepted, so one mistake gives one message.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jobd.config import build
from jobd.config.checks import check_resource
from jobd.config.listen import listen_problem
from jobd.config.resources import build_resource
from jobd.config.semantic import Findings, check_database_url, check_persister, check_tenants
from jobd.config.validate import schema_problems
from jobd.config.yamlload import Document, KeyPath, format_path, load_document
from jobd.errors import ConfigError, Problem
from jobd.model import Admin, Otel, Queue, Resource, Spec

__all__ = ["Locator", "load_config", "load_config_text", "load_located"]


class Locator:
    """Turns findings about a loaded file, `(key path, at the key?, message)`, into
    Problems at the file:line:column where each key (or its value) was written."""

    def __init__(self, filename: str, doc: Document) -> None:
        self.filename, self.doc = filename, doc

    def __call__(self, findings: Iterable[tuple[KeyPath, bool, str]]) -> list[Problem]:
        problems = [
            Problem(
                self.filename,
                *self.doc.position(path, prefer_key=at_key),
                format_path(path),
                message,
            )
            for path, at_key, message in findings
        ]
        return sorted(problems, key=lambda p: (p.line, p.column))


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Spec:
    """Read and validate the file at `path`; env defaults to `os.environ`."""
    return load_located(path, env)[0]


def load_located(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Spec, Locator]:
    """`load_config`, and a `Locator` for findings about the file made afterwards."""
    filename = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise _fail(filename, "configuration file not found (give one with -c FILE)") from None
    except IsADirectoryError:
        raise _fail(filename, "is a directory, not a configuration file") from None
    except OSError as exc:
        raise _fail(filename, f"cannot read the configuration file: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = Problem(filename, line, 1, "", f"not UTF-8 text (byte {exc.start})")
        raise ConfigError([problem]) from None
    return _load(text, filename, env)


def _fail(filename: str, message: str) -> ConfigError:
    return ConfigError([Problem(filename, 0, 0, "", message)])


def load_config_text(
    text: str, filename: str = "<string>", env: Mapping[str, str] | None = None
) -> Spec:
    """Validate configuration text; `filename` only labels the messages."""
    return _load(text, filename, env)[0]


def _load(text: str, filename: str, env: Mapping[str, str] | None) -> tuple[Spec, Locator]:
    doc, problems = load_document(text, filename, os.environ if env is None else env)
    if doc is None:
        raise ConfigError(problems)
    found_by_schema, broken = schema_problems(doc, filename)
    already = {p.path for p in problems}  # a failed ${VAR} already said what is wrong there
    problems += [p for p in found_by_schema if p.path not in already]
    spec, findings = _build_and_check(doc, broken | {_parse_path(p) for p in already})
    locate = Locator(filename, doc)
    problems += locate(findings)
    if problems or spec is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line, p.column)))
    return spec, locate


def _parse_path(text: str) -> KeyPath:
    """Inverse of format_path, close enough to mark a broken part ("a.b[0]" -> a, b)."""
    return tuple(part for part in text.replace("[", ".").split(".") if part and "]" not in part)


class _Parts:
    """Which parts of the file passed the schema, so semantic checks skip broken ones."""

    def __init__(self, data: Mapping[str, Any], broken: set[KeyPath]) -> None:
        self.data, self.broken = data, broken

    def clean(self, *path: str) -> bool:
        return not any(path[: len(b)] == b[: len(path)] for b in self.broken)

    def get(self, key: str) -> Any:
        return self.data.get(key) if self.clean(key) else None


def _build_and_check(doc: Document, broken: set[KeyPath]) -> tuple[Spec | None, list[Any]]:
    found = Findings()
    if () in broken or not isinstance(doc.data, dict):
        return None, found.items
    parts = _Parts(doc.data, broken)
    tenants = build.build_tenants(parts.get("list_tenants"))
    persister = build.build_persister(parts.get("actor_persister"))
    check_tenants(found, ("list_tenants",), tenants)
    check_database_url(found, (parts.get("database") or {}).get("url"))
    check_persister(found, ("actor_persister",), persister)
    log = build.build_log(parts.get("log") or {})
    admin = build.build_admin(parts.get("admin") or {})
    _check_listen(found, admin)
    otel = build.build_otel(parts.get("otel") or {})
    _check_otel(found, otel)
    declared = None
    if parts.clean("queues"):
        declared = {k: build.build_queue(k, v) for k, v in (parts.get("queues") or {}).items()}
    inherited = build.Inherited(tenants, persister, log.debug_all_triggers)
    resources: dict[str, Resource] = {}
    raw_resources = doc.data.get("resources") or {}
    for name, raw in raw_resources.items() if isinstance(raw_resources, dict) else ():
        usable = _usable_part(parts, name, raw)
        if usable is not None:
            resources[name] = build_resource(name, usable, inherited)
            check_resource(found, resources[name], raw, declared)
    _check_worker_names(found, resources, raw_resources)
    if broken or found.items or declared is None:
        return None, found.items
    spec = Spec(
        version=doc.data["version"],
        database=build.build_database(doc.data.get("database") or {}),
        node=doc.data.get("node") or None,
        log=log,
        admin=admin,
        engine=build.build_engine(doc.data.get("engine") or {}),
        queues=MappingProxyType(_all_queues(declared, resources)),
        actor_persister=persister,
        list_tenants=tenants,
        resources=MappingProxyType(resources),
        otel=otel,
    )
    return spec, found.items


_ITEMS = ("actions", "reads", "triggers", "scheduled_actions")


def _usable_part(parts: _Parts, name: str, raw: Any) -> dict[str, Any] | None:
    """The resource without its schema-broken items, or None when the resource itself is.

    Dropping only the broken action/read/trigger/schedule lets the others still be
    checked; references to a dropped item are not reported (the raw names count as known).
    """
    here = ("resources", name)
    for broken in parts.broken:
        if broken[: len(here)] == here[: len(broken)] and len(broken) <= 3:
            return None
    usable = dict(raw)
    for key in _ITEMS:
        if key in usable:
            usable[key] = {k: v for k, v in usable[key].items() if parts.clean(*here, key, k)}
    return usable


def _check_listen(found: Findings, admin: Admin) -> None:
    problem = listen_problem(admin.listen, admin.token)
    if problem:
        found.add(("admin", "listen"), problem)


def _check_otel(found: Findings, otel: Otel) -> None:
    """Tracing needs the OpenTelemetry SDK, which only the `otel` extra installs."""
    if otel.enabled and not _importable("opentelemetry.sdk.trace"):
        found.add(
            ("otel", "enabled"),
            "needs the OpenTelemetry SDK, which is not installed: "
            "pip install 'pgjobd[otel]' (or set otel.enabled: false)",
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _check_worker_names(found: Findings, resources: dict[str, Resource], raw: Any) -> None:
    """Worker and scheduler names identify jobs, so they are unique across the file."""
    seen: dict[str, str] = {}
    for resource in resources.values():
        named: list[tuple[KeyPath, str, str]] = []
        for t in resource.triggers.values():
            path: KeyPath = ("resources", resource.name, "triggers", t.name)
            named += [(path, "worker_name", t.worker_name)]
            named += [(path, "scheduler_name", t.scheduler_name)]
        for s in resource.scheduled_actions.values():
            path = ("resources", resource.name, "scheduled_actions", s.name)
            named.append((path, "worker_name", s.worker_name))
        for path, key, name in named:
            written = key in raw[resource.name][path[2]][path[3]]
            if name in seen:
                found.add(
                    (*path, key) if written else path,
                    f"{key.replace('_', ' ')} '{name}' is already used by {seen[name]} "
                    f"(set {key} to make it unique)",
                    at_key=not written,
                )
            else:
                seen[name] = format_path(path)


def _all_queues(declared: dict[str, Queue], resources: dict[str, Resource]) -> dict[str, Queue]:
    """Declared queues plus the implicit `<resource>_<name>` queue of each that names none."""
    queues = dict(declared)
    limit = build.queue_defaults()["limit"]
    for resource in resources.values():
        used = [q for t in resource.triggers.values() for q in (t.queue, t.scheduler_queue)]
        used += [s.queue for s in resource.scheduled_actions.values()]
        for name in used:
            if name not in queues:
                queues[name] = Queue(name, limit, None, implicit=True)
    return queues
