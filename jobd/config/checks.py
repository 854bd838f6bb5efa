"""The semantic checks of one resource and of the whole file (names, queues, references).

`raw` arguments are the schema-valid data as written, used only to tell an explicit value
from a default (an explicit `queue:` must be declared; an implicit one is created).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobd.config.build import build_persister, build_tenants
from jobd.config.placeholders import ROW_ROOTS, SCHEDULE_ROOTS, uses
from jobd.config.semantic import (
    Findings,
    check_persister,
    check_templates,
    check_tenants,
)
from jobd.config.yamlload import KeyPath
from jobd.model import Action, Resource, Schedule, Trigger
from jobd.sql.ident import is_identifier

Raw = Mapping[str, Any]


def check_resource(
    found: Findings, resource: Resource, raw: Raw, queues: Mapping[str, Any] | None
) -> None:
    """All checks of one resource; `queues` is None when `queues:` itself was invalid."""
    base: KeyPath = ("resources", resource.name)
    _check_table(found, base, resource)
    if resource.multitenancy is None and "list_tenants" in raw:
        found.add((*base, "list_tenants"), "list_tenants needs multitenancy on the resource")
    if "list_tenants" in raw:  # an inherited list is checked where it is written
        check_tenants(found, (*base, "list_tenants"), resource.list_tenants)
    for action in resource.actions.values():
        _check_action(found, (*base, "actions", action.name), action)
    for read in resource.reads.values():
        path = (*base, "reads", read.name)
        found.expression((*path, "where"), read.where)
        found.sort((*path, "sort"), read.sort)
    for trigger in resource.triggers.values():
        path = (*base, "triggers", trigger.name)
        written = _Written(raw["triggers"][trigger.name], raw)
        _check_trigger(found, path, resource, trigger, written, queues)
    for schedule in resource.scheduled_actions.values():
        path = (*base, "scheduled_actions", schedule.name)
        written = _Written(raw["scheduled_actions"][schedule.name], raw)
        _check_schedule(found, path, resource, schedule, written, queues)


class _Written:
    """What a trigger/schedule spelled out itself (inherited values are checked where written)."""

    def __init__(self, raw: Raw, resource: Raw) -> None:
        self.raw, self.resource = raw, resource
        self.tenants = build_tenants(raw.get("list_tenants"))
        self.persister = build_persister(raw.get("actor_persister"))

    def has(self, key: str) -> bool:
        return key in self.raw

    def names(self, kind: str) -> list[str]:
        """Names of the resource's actions/reads as written, broken ones included."""
        return list(self.resource.get(kind) or {})


def _check_table(found: Findings, base: KeyPath, resource: Resource) -> None:
    for part in (resource.table_schema, resource.table_name):
        if part is not None and not is_identifier(part):
            found.add(
                (*base, "table"),
                f"'{resource.table}' is not a table name (write table or schema.table, each "
                "a valid identifier)",
            )
            return
    tenancy = resource.multitenancy
    if tenancy and tenancy.strategy == "schema" and resource.table_schema:
        found.add(
            (*base, "table"),
            "with multitenancy strategy 'schema' the table lives in each tenant's schema; "
            "write it without a schema",
        )
    if tenancy and tenancy.strategy == "schema" and tenancy.attribute:
        found.add((*base, "multitenancy", "attribute"), "only strategy 'attribute' uses it")


def _check_action(found: Findings, path: KeyPath, action: Action) -> None:
    if action.http is not None:
        http = (*path, "http")
        check_templates(found, (*http, "url"), action.http.url)
        check_templates(found, (*http, "headers"), dict(action.http.headers))
        if action.http.body is not None:
            check_templates(found, (*http, "body"), action.http.body)
    if action.update is not None:
        for column, value in action.update.set.items():
            sql = getattr(value, "sql", None)
            if isinstance(sql, str):
                found.expression((*path, "update", "set", column, "sql"), sql, boolean=False)


def _placeholders(action: Action | None, roots: frozenset[str]) -> list[str]:
    """The placeholders of an http action's templates whose first name is in `roots`."""
    if action is None or action.http is None:
        return []
    templates = [action.http.url, dict(action.http.headers), action.http.body]
    return uses(templates, roots)


def _uses(action: Action | None, kind: str) -> bool:
    if action is None or action.update is None:
        return False
    return any(type(v).__name__ == kind for v in action.update.set.values())


def _check_trigger(
    found: Findings,
    path: KeyPath,
    resource: Resource,
    trigger: Trigger,
    written: _Written,
    queues: Mapping[str, Any] | None,
) -> None:
    actions, where = written.names("actions"), f"resources.{resource.name}.actions"
    for key in ("action", "on_success", "on_error"):
        found.reference((*path, key), "action", getattr(trigger, key), actions, where)
    reads, where = written.names("reads"), f"resources.{resource.name}.reads"
    found.reference((*path, "read"), "read", trigger.read, reads, where)
    if trigger.worker_read != trigger.read:
        found.reference((*path, "worker_read"), "read", trigger.worker_read, reads, where)
    found.expression((*path, "where"), trigger.where)
    found.cron((*path, "scheduler_cron"), trigger.scheduler_cron)
    found.sort((*path, "sort"), trigger.sort)
    for key in ("queue", "scheduler_queue"):
        if written.has(key) and queues is not None:
            found.reference((*path, key), "queue", getattr(trigger, key), queues, "queues")
    _check_tenancy(found, path, resource, trigger, written)
    _check_outside_transaction(found, path, resource, trigger, written)
    _check_events(found, path, resource, trigger)
    check_persister(found, (*path, "actor_persister"), written.persister)
    _check_set_sources(found, path, resource, trigger)
    for key in ("action", "on_success", "on_error"):
        name = getattr(trigger, key)
        used = _placeholders(resource.actions.get(name or ""), SCHEDULE_ROOTS)
        if used:
            found.add(
                (*path, key),
                f"action '{name}' uses {', '.join(used)}, which only a scheduled action has",
            )


def _check_outside_transaction(
    found: Findings, path: KeyPath, resource: Resource, trigger: Trigger, written: _Written
) -> None:
    """With `action_in_transaction: false` nothing is held while the action runs: no row
    lock to keep, no connection for an `update` action."""
    if trigger.action_in_transaction:
        return
    if written.has("lock_for_update") and trigger.lock_for_update:
        found.add(
            (*path, "lock_for_update"),
            "lock_for_update: true holds the row lock while the action runs, and "
            "action_in_transaction: false holds nothing then; remove one of them (without "
            "the lock, the rows that still match are locked after the action)",
        )
    action = resource.actions.get(trigger.action)
    if action is not None and action.update is not None:
        found.add(
            (*path, "action"),
            f"action {trigger.action!r} is an update, which runs in the job's transaction; "
            "with action_in_transaction: false there is none while the action runs: make "
            "it the on_success, or remove action_in_transaction: false",
        )


def _check_events(found: Findings, path: KeyPath, resource: Resource, trigger: Trigger) -> None:
    """`columns` needs an update event; a delete job's row is gone, so no `update` action
    can run for it (as the action, on_success or on_error)."""
    if trigger.columns is not None and "update" not in trigger.events:
        found.add(
            (*path, "columns"),
            "columns choose which UPDATEs count: add update to events, or remove columns",
        )
    if "delete" not in trigger.events:
        return
    for key in ("action", "on_success", "on_error"):
        name = getattr(trigger, key)
        action = resource.actions.get(name or "")
        if action is not None and action.update is not None:
            found.add(
                (*path, key),
                f"action {name!r} is an update, and a delete event's row is gone: use a "
                "python or http action, or a trigger without the delete event",
            )


def _check_tenancy(
    found: Findings, path: KeyPath, resource: Resource, trigger: Trigger, written: _Written
) -> None:
    tenancy = resource.multitenancy
    if written.tenants is not None and tenancy is None:
        found.add((*path, "list_tenants"), "list_tenants needs multitenancy on the resource")
    check_tenants(found, (*path, "list_tenants"), written.tenants)
    scans = trigger.scheduler_cron is not None and not trigger.use_tenant_from_record
    installs = bool(trigger.events) and tenancy is not None and tenancy.strategy == "schema"
    if tenancy is not None and (scans or installs) and trigger.list_tenants is None:
        what = "scan" if scans else "install its database triggers in"
        found.add(
            path,
            f"no tenants to {what}: set list_tenants (on the trigger, the resource or the top "
            "level) or use_tenant_from_record",
            at_key=True,
        )
    if trigger.use_tenant_from_record and (tenancy is None or tenancy.strategy != "attribute"):
        found.add(
            (*path, "use_tenant_from_record"),
            "needs multitenancy with strategy 'attribute' on the resource",
        )


def _check_set_sources(
    found: Findings, path: KeyPath, resource: Resource, trigger: Trigger
) -> None:
    """{error: ...} exists only in on_error, {response: ...} only in on_success after http."""
    main = resource.actions.get(trigger.action)
    for key, name in (("action", trigger.action), ("on_success", trigger.on_success)):
        if _uses(resource.actions.get(name or ""), "ErrorValue"):
            found.add(
                (*path, key),
                f"action '{name}' uses {{error: ...}}, which only an on_error action has",
            )
    for key, name in (("action", trigger.action), ("on_error", trigger.on_error)):
        if _uses(resource.actions.get(name or ""), "ResponseValue"):
            found.add(
                (*path, key),
                f"action '{name}' uses {{response: ...}}, which only an on_success action has",
            )
    success = resource.actions.get(trigger.on_success or "")
    if _uses(success, "ResponseValue") and main is not None and main.kind != "http":
        found.add(
            (*path, "on_success"),
            f"action '{trigger.on_success}' uses {{response: ...}} but the main action "
            f"'{trigger.action}' is not an http action",
        )


def _check_schedule(
    found: Findings,
    path: KeyPath,
    resource: Resource,
    schedule: Schedule,
    written: _Written,
    queues: Mapping[str, Any] | None,
) -> None:
    where = f"resources.{resource.name}.actions"
    found.reference((*path, "action"), "action", schedule.action, written.names("actions"), where)
    action = resource.actions.get(schedule.action)
    if action is not None and action.kind == "update":
        found.add((*path, "action"), f"action '{schedule.action}' is an update, which needs a row")
    used = _placeholders(action, ROW_ROOTS)
    if used:
        found.add(
            (*path, "action"),
            f"action '{schedule.action}' uses {', '.join(used)}, which a scheduled action "
            "cannot fill: it runs for no row and no trigger",
        )
    found.cron((*path, "cron"), schedule.cron)
    found.timezone((*path, "timezone"), schedule.timezone)
    if written.has("queue") and queues is not None:
        found.reference((*path, "queue"), "queue", schedule.queue, queues, "queues")
    check_tenants(found, (*path, "list_tenants"), written.tenants)
    check_persister(found, (*path, "actor_persister"), written.persister)
