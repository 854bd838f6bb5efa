"""Schema-valid data -> the typed model, with every default taken from the JSON Schema.

Each builder gets a mapping the schema has already accepted, so it only applies defaults,
converts units and resolves derived names; it never judges. Cross-references (actions,
reads, queues) are checked afterwards on the built values, in `semantic.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jobd.config.durations import parse_duration_s
from jobd.config.schema import defaults, definition
from jobd.model import (
    Action,
    ActorPersister,
    Admin,
    Backoff,
    Database,
    EngineSettings,
    ErrorValue,
    HttpAction,
    InputValue,
    LiteralValue,
    Log,
    Otel,
    Queue,
    Read,
    ResponseValue,
    SetValue,
    SortKey,
    SqlValue,
    TenantSource,
    UpdateAction,
    freeze_json,
)

Raw = Mapping[str, Any]


def with_defaults(definition_name: str, raw: Raw) -> dict[str, Any]:
    return {**defaults(definition_name), **raw}


def optional_s(value: Any) -> float | None:
    return None if value is None else parse_duration_s(value)


def _frozen(items: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(items))


def build_database(raw: Raw) -> Database:
    opts = {**defaults("", "database"), **raw}
    return Database(url=opts.get("url") or None, schema=opts["schema"], pool_size=opts["pool_size"])


def build_log(raw: Raw) -> Log:
    opts = {**defaults("", "log"), **raw}
    return Log(opts["format"], opts["level"], opts["debug_all_triggers"])


def build_admin(raw: Raw) -> Admin:
    opts = {**defaults("", "admin"), **raw}
    listen = opts["listen"]
    return Admin(
        listen=None if listen in (False, "off") else listen, token=opts.get("token") or None
    )


def build_otel(raw: Raw) -> Otel:
    opts = {**defaults("", "otel"), **raw}
    return Otel(
        enabled=bool(opts["enabled"]),
        service_name=opts["service_name"],
        exporter=opts["exporter"],
        endpoint=opts.get("endpoint"),
        traceparent=bool(opts["traceparent"]),
    )


def build_engine(raw: Raw) -> EngineSettings:
    opts = {**defaults("", "engine"), **raw}
    retention = {**defaults("", "engine", "retention"), **opts["retention"]}
    return EngineSettings(
        poll_interval_s=parse_duration_s(opts["poll_interval"]),
        shutdown_grace_s=parse_duration_s(opts["shutdown_grace"]),
        heartbeat_s=parse_duration_s(opts["heartbeat"]),
        retention_s=_frozen({k: parse_duration_s(v) for k, v in retention.items()}),
        max_rescues=opts["max_rescues"],
    )


def queue_defaults() -> dict[str, Any]:
    """Defaults of the mapping form of a queue (also the limit of implicit queues)."""
    form: dict[str, Any] = definition("queue")["oneOf"][1]
    return {key: prop["default"] for key, prop in form["properties"].items() if "default" in prop}


def build_queue(name: str, raw: int | Raw, *, implicit: bool = False) -> Queue:
    opts = {**queue_defaults(), **({"limit": raw} if isinstance(raw, int) else raw)}
    return Queue(name, opts["limit"], opts.get("global_limit"), implicit)


def build_backoff(raw: str | Raw) -> Backoff:
    exponential = definition("backoff")["oneOf"][1]["properties"]["exponential"]["properties"]
    base = {key: prop["default"] for key, prop in exponential.items()}
    if isinstance(raw, Mapping) and "fixed" in raw:
        return Backoff("fixed", parse_duration_s(raw["fixed"]), None, None, 0.0)
    opts = {**base, **(raw.get("exponential") or {})} if isinstance(raw, Mapping) else base
    return Backoff(
        "exponential",
        None,
        parse_duration_s(opts["min"]),
        parse_duration_s(opts["max"]),
        float(opts["jitter"]),
    )


def build_tenants(raw: Any) -> TenantSource | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        return TenantSource("list", names=tuple(raw))
    if "sql" in raw:
        return TenantSource("sql", sql=raw["sql"])
    return TenantSource("python", entrypoint=raw["python"])


def build_persister(raw: Raw | None) -> ActorPersister | None:
    if raw is None:
        return None
    lookup = {**defaults("actor_persister", "lookup"), **(raw.get("lookup") or {})}
    store = raw.get("store")
    return ActorPersister(
        store=None if store is None else tuple(store),
        lookup_sql=lookup.get("sql"),
        lookup_args=tuple(lookup["args"]),
        python=raw.get("python"),
    )


_SORT = re.compile(r"(\S+)(?:\s+(asc|desc))?", re.IGNORECASE)


def build_sort(raw: list[str] | None) -> tuple[SortKey, ...] | None:
    if raw is None:
        return None
    keys = []
    for item in raw:
        match = _SORT.fullmatch(item.strip())
        column, direction = (match.group(1), match.group(2)) if match else (item, None)
        keys.append(SortKey(column, (direction or "").lower() == "desc"))
    return tuple(keys)


def build_read(name: str, raw: Raw) -> Read:
    opts = with_defaults("read", raw)
    columns = opts.get("columns")
    sort = build_sort(opts.get("sort")) or ()
    return Read(name, opts.get("where"), sort, _tuple_or_none(columns))


def _tuple_or_none(items: list[str] | None) -> tuple[str, ...] | None:
    return None if items is None else tuple(items)


def build_set_value(raw: Any) -> SetValue:
    if not isinstance(raw, Mapping):
        return LiteralValue(freeze_json(raw))
    if "sql" in raw:
        return SqlValue(raw["sql"])
    if "input" in raw:
        return InputValue(raw["input"])
    if "error" in raw:
        return ErrorValue(raw["error"])
    if "response" in raw:
        return ResponseValue(tuple(raw["response"].split(".")))
    return LiteralValue(freeze_json(raw["literal"]))


def build_action(name: str, raw: Raw) -> Action:
    if "python" in raw:
        return Action(name, "python", python=raw["python"])
    if "update" in raw:
        values = {column: build_set_value(v) for column, v in raw["update"]["set"].items()}
        return Action(name, "update", update=UpdateAction(_frozen(values)))
    opts = with_defaults("http_action", raw["http"])
    http = HttpAction(
        method=opts["method"],
        url=opts["url"],
        headers=_frozen(opts["headers"]),
        body=freeze_json(opts["body"]) if "body" in opts else None,
        timeout_s=parse_duration_s(opts["timeout"]),
        success=tuple(opts["success"]),
        retry_on=tuple(opts["retry_on"]),
        sign_secret=(opts.get("sign") or {}).get("secret"),
        sign_scheme=(opts.get("sign") or {}).get("scheme", "jobd"),
    )
    return Action(name, "http", http=http)


class Inherited:
    """What triggers and schedules inherit from the file's top level."""

    def __init__(
        self, tenants: TenantSource | None, persister: ActorPersister | None, debug_all: bool
    ) -> None:
        self.tenants, self.persister, self.debug_all = tenants, persister, debug_all
