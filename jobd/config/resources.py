"""Build one resource (its actions, reads, triggers and scheduled actions) from valid data.

Derived names are resolved here, once: worker names, scheduler names, queues, the tenant
source and actor persister each trigger and schedule inherits.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from jobd.config.build import (
    Inherited,
    build_action,
    build_backoff,
    build_persister,
    build_read,
    build_sort,
    build_tenants,
    optional_s,
    with_defaults,
)
from jobd.config.durations import parse_duration_s
from jobd.model import Multitenancy, Resource, Schedule, TenantSource, Trigger, freeze_json
from jobd.sql.ident import split_table_name

Raw = Mapping[str, Any]


def implicit_queue_name(resource: str, name: str) -> str:
    """The queue of a trigger or schedule that names none: `<resource>_<name>`."""
    return f"{resource}_{name}"


def build_resource(name: str, raw: Raw, inherited: Inherited) -> Resource:
    opts = with_defaults("resource", raw)
    schema, table = split_table_name(opts["table"])
    tenancy_raw = opts.get("multitenancy")
    tenancy = (
        Multitenancy(tenancy_raw["strategy"], tenancy_raw.get("attribute")) if tenancy_raw else None
    )
    own_tenants = build_tenants(opts.get("list_tenants"))
    tenants = (own_tenants or inherited.tenants) if tenancy else own_tenants
    scope = Inherited(tenants, inherited.persister, inherited.debug_all)
    pk = opts.get("primary_key")
    return Resource(
        name=name,
        table=opts["table"],
        table_schema=schema,
        table_name=table,
        primary_key=None if pk is None else tuple(pk),
        multitenancy=tenancy,
        actions=_proxy({k: build_action(k, v) for k, v in opts["actions"].items()}),
        reads=_proxy({k: build_read(k, v) for k, v in opts["reads"].items()}),
        triggers=_proxy({k: build_trigger(name, k, v, scope) for k, v in opts["triggers"].items()}),
        scheduled_actions=_proxy(
            {k: build_schedule(name, k, v, scope) for k, v in opts["scheduled_actions"].items()}
        ),
        list_tenants=tenants,
    )


def _proxy(items: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(items)


def _tenants(raw: Raw, scope: Inherited) -> TenantSource | None:
    return build_tenants(raw.get("list_tenants")) or scope.tenants


def _json_or_none(value: Any) -> Any:
    return None if value is None else freeze_json(value)


def build_trigger(resource: str, name: str, raw: Raw, scope: Inherited) -> Trigger:
    opts = with_defaults("trigger", raw)
    queue = opts.get("queue") or implicit_queue_name(resource, name)
    cron = opts["scheduler_cron"]
    read = opts.get("read")
    return Trigger(
        name=name,
        resource=resource,
        action=opts["action"],
        where=opts.get("where"),
        scheduler_cron=None if cron is False else cron,
        read=read,
        worker_read=opts.get("worker_read", read),
        sort=build_sort(opts.get("sort")),
        record_limit=opts.get("record_limit"),
        stream_batch_size=opts["stream_batch_size"],
        queue=queue,
        scheduler_queue=opts.get("scheduler_queue") or queue,
        max_attempts=opts["max_attempts"],
        max_scheduler_attempts=opts["max_scheduler_attempts"],
        priority=opts["priority"],
        scheduler_priority=opts["scheduler_priority"],
        backoff=build_backoff(opts["backoff"]),
        timeout_s=optional_s(opts.get("timeout")),
        trigger_once=opts["trigger_once"],
        lock_for_update=opts["lock_for_update"],
        action_in_transaction=opts["action_in_transaction"],
        on_success=opts.get("on_success"),
        on_error=opts.get("on_error"),
        on_error_fails_job=opts["on_error_fails_job"],
        discard_cooldown_s=parse_duration_s(opts["discard_cooldown"]),
        log_errors=opts["log_errors"],
        log_final_error=opts["log_final_error"],
        debug=opts["debug"] or scope.debug_all,
        list_tenants=_tenants(opts, scope),
        use_tenant_from_record=opts["use_tenant_from_record"],
        actor_persister=build_persister(opts.get("actor_persister")) or scope.persister,
        default_actor=_json_or_none(opts.get("default_actor")),
        action_input=freeze_json(opts["action_input"]),
        extra_args=freeze_json(opts["extra_args"]),
        state=opts["state"],
        worker_name=opts.get("worker_name") or f"{resource}.{name}",
        scheduler_name=opts.get("scheduler_name") or f"{resource}.{name}.scheduler",
        events=tuple(opts.get("events") or ()),
        columns=None if opts.get("columns") is None else tuple(opts["columns"]),
        tags=tuple(opts["tags"]),
    )


def build_schedule(resource: str, name: str, raw: Raw, scope: Inherited) -> Schedule:
    opts = with_defaults("schedule", raw)
    return Schedule(
        name=name,
        resource=resource,
        cron=None if opts["cron"] is False else opts["cron"],
        timezone=opts["timezone"],
        action=opts["action"],
        action_input=freeze_json(opts["action_input"]),
        queue=opts.get("queue") or implicit_queue_name(resource, name),
        priority=opts["priority"],
        max_attempts=opts["max_attempts"],
        backoff=build_backoff(opts["backoff"]),
        timeout_s=optional_s(opts.get("timeout")),
        state=opts["state"],
        list_tenants=_tenants(opts, scope),
        actor_persister=build_persister(opts.get("actor_persister")) or scope.persister,
        default_actor=_json_or_none(opts.get("default_actor")),
        worker_name=opts.get("worker_name") or f"{resource}.{name}",
        debug=opts["debug"],
        overlap=opts["overlap"],
        catch_up=opts["catch_up"],
        catch_up_window_s=parse_duration_s(opts["catch_up_window"]),
        tags=tuple(opts["tags"]),
    )
