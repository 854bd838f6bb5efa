"""The configuration as immutable, typed values: what every other part of jobd consumes.

Built by `jobd.config` from a validated file, with every default applied (from the JSON
Schema) and every inherited or derived value resolved: names, queues, tenant sources and
actor persisters. Durations are floats of seconds (`_s`); mappings are read-only views.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

JsonObject = Mapping[str, Any]


class FrozenDict(dict[str, Any]):
    """A read-only dict for JSON payloads (action_input, body, ...): json.dumps accepts it."""

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("configuration values are read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))


def freeze_json(value: Any) -> Any:
    """Deep-freeze JSON-like data: dicts become FrozenDict, lists become tuples."""
    if isinstance(value, dict):
        return FrozenDict({str(k): freeze_json(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze_json(v) for v in value)
    return value


@dataclass(frozen=True, slots=True)
class Database:
    url: str | None  # None: embedded Postgres for development
    schema: str
    pool_size: int


@dataclass(frozen=True, slots=True)
class Log:
    format: Literal["auto", "json", "console"]
    level: Literal["debug", "info", "warning", "error"]
    debug_all_triggers: bool


@dataclass(frozen=True, slots=True)
class Admin:
    listen: str | None  # "host:port"; None = off
    token: str | None


@dataclass(frozen=True, slots=True)
class Otel:
    """OpenTelemetry traces (`otel`; the `otel` extra): off unless enabled."""

    enabled: bool = False
    service_name: str = "jobd"
    exporter: Literal["otlp", "console"] = "otlp"
    endpoint: str | None = None  # None: $OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT or the default
    traceparent: bool = True  # W3C traceparent on HTTP actions' requests


@dataclass(frozen=True, slots=True)
class EngineSettings:
    poll_interval_s: float
    shutdown_grace_s: float
    heartbeat_s: float
    retention_s: Mapping[str, float]  # completed, cancelled, discarded
    max_rescues: int = 3  # rescued more often, a job is a final failure


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    limit: int  # jobs at once per node
    global_limit: int | None  # across the cluster; None = no global limit
    implicit: bool = False  # created for a trigger/schedule without `queue:`


@dataclass(frozen=True, slots=True)
class Backoff:
    kind: Literal["exponential", "fixed"]
    seconds: float | None  # fixed delay (kind "fixed")
    min_s: float | None  # first delay (kind "exponential")
    max_s: float | None
    jitter: float  # fraction of the delay, 0..1

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before the attempt after `attempt` (1-based) failed, jitter applied."""
        if self.kind == "fixed":
            base = self.seconds or 0.0
        else:
            low, high = self.min_s or 0.0, self.max_s or 0.0
            base = min(high, low * 2.0 ** min(max(attempt - 1, 0), 64))
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + spread))


@dataclass(frozen=True, slots=True)
class TenantSource:
    kind: Literal["list", "sql", "python"]
    names: tuple[str, ...] = ()  # kind "list"
    sql: str | None = None  # kind "sql": one tenant per row, first column
    entrypoint: str | None = None  # kind "python": "module:function"


@dataclass(frozen=True, slots=True)
class ActorPersister:
    store: tuple[str, ...] | None  # fields kept in the job; None = the whole actor
    lookup_sql: str | None  # SELECT with $1.. bound to lookup_args
    lookup_args: tuple[str, ...]
    python: str | None  # "module:object" with store(actor) and lookup(stored)


@dataclass(frozen=True, slots=True)
class Multitenancy:
    strategy: Literal["attribute", "schema"]
    attribute: str | None  # the tenant column (strategy "attribute")


@dataclass(frozen=True, slots=True)
class SortKey:
    column: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Read:
    name: str
    where: str | None
    sort: tuple[SortKey, ...]  # () = primary-key order
    columns: tuple[str, ...] | None  # None = all columns


DEFAULT_READ = Read(name="", where=None, sort=(), columns=None)


# Values of an update action's `set:` mapping.
@dataclass(frozen=True, slots=True)
class LiteralValue:
    value: Any  # bound as a parameter (JSON for lists/mappings)


@dataclass(frozen=True, slots=True)
class SqlValue:
    sql: str  # a checked expression, like `where`


@dataclass(frozen=True, slots=True)
class InputValue:
    key: str  # a key of the job's input


@dataclass(frozen=True, slots=True)
class ErrorValue:
    field: Literal["message", "kind", "status", "attempt"]  # of the final error (on_error)


@dataclass(frozen=True, slots=True)
class ResponseValue:
    path: tuple[str, ...]  # into the main action's JSON response body (on_success)


SetValue = LiteralValue | SqlValue | InputValue | ErrorValue | ResponseValue


@dataclass(frozen=True, slots=True)
class UpdateAction:
    set: Mapping[str, SetValue]


@dataclass(frozen=True, slots=True)
class HttpAction:
    method: str
    url: str  # template
    headers: Mapping[str, str]  # templates
    body: JsonObject | None  # template mapping; None = the default envelope
    timeout_s: float
    success: tuple[int | str, ...]  # 200 or "2xx"
    retry_on: tuple[int | str, ...]
    sign_secret: str | None
    sign_scheme: Literal["jobd", "standard-webhooks"] = "jobd"

    def is_success(self, status: int) -> bool:
        return status_matches(status, self.success)

    def should_retry(self, status: int) -> bool:
        return status_matches(status, self.retry_on)


def status_matches(status: int, patterns: tuple[int | str, ...]) -> bool:
    """True when `status` is listed, exactly (404) or by class ("4xx")."""
    return any(status == p if isinstance(p, int) else str(status)[:1] == p[:1] for p in patterns)


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    kind: Literal["http", "python", "update"]
    http: HttpAction | None = None
    python: str | None = None  # "module:callable"
    update: UpdateAction | None = None


State = Literal["active", "paused", "deleted"]
EventKind = Literal["insert", "update", "delete"]


@dataclass(frozen=True, slots=True)
class Trigger:
    name: str
    resource: str
    action: str
    where: str | None
    scheduler_cron: str | None  # None: no scheduler (`false`)
    read: str | None  # read names; None = the default read (see Resource.read_named)
    worker_read: str | None
    sort: tuple[SortKey, ...] | None  # None: the read's sort, else primary key
    record_limit: int | None
    stream_batch_size: int
    queue: str
    scheduler_queue: str
    max_attempts: int
    max_scheduler_attempts: int
    priority: int
    scheduler_priority: int
    backoff: Backoff
    timeout_s: float | None
    trigger_once: bool
    lock_for_update: bool
    action_in_transaction: bool  # false: nothing is held while the action runs
    on_success: str | None
    on_error: str | None
    on_error_fails_job: bool
    discard_cooldown_s: float
    log_errors: bool
    log_final_error: bool
    debug: bool  # this trigger's own flag or log.debug_all_triggers
    list_tenants: TenantSource | None  # resolved: trigger > resource > global
    use_tenant_from_record: bool
    actor_persister: ActorPersister | None  # resolved: trigger > global
    default_actor: JsonObject | None
    action_input: JsonObject
    extra_args: JsonObject
    state: State
    worker_name: str
    scheduler_name: str
    # Change-data events ("insert", "update", "delete"): database triggers enqueue in the
    # writing transaction (jobd.triggers.events); () = none. `columns`: an update counts
    # only when one of them changed (None: any update).
    events: tuple[EventKind, ...] = ()
    columns: tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()  # the tags column of each row's job


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    resource: str
    cron: str | None  # as written: 5 fields, 6 with seconds first, or @nickname; None: no ticks
    timezone: str
    action: str
    action_input: JsonObject
    queue: str
    priority: int
    max_attempts: int
    backoff: Backoff
    timeout_s: float | None
    state: State
    list_tenants: TenantSource | None  # resolved: schedule > resource > global
    actor_persister: ActorPersister | None
    default_actor: JsonObject | None
    worker_name: str
    debug: bool
    overlap: Literal["skip", "allow"]
    catch_up: Literal["none", "latest", "all"]
    catch_up_window_s: float
    tags: tuple[str, ...] = ()  # the tags column of each run's job


@dataclass(frozen=True, slots=True)
class Resource:
    name: str
    table: str  # as written
    table_schema: str | None
    table_name: str
    primary_key: tuple[str, ...] | None  # None: read from the catalog
    multitenancy: Multitenancy | None
    actions: Mapping[str, Action]
    reads: Mapping[str, Read]
    triggers: Mapping[str, Trigger]
    scheduled_actions: Mapping[str, Schedule]
    list_tenants: TenantSource | None  # resolved: resource > global (multitenant only)

    def read_named(self, name: str | None) -> Read:
        """The named read, or the default read (all columns, primary-key order)."""
        return DEFAULT_READ if name is None else self.reads[name]


@dataclass(frozen=True, slots=True)
class Spec:
    version: int
    database: Database
    node: str | None
    log: Log
    admin: Admin
    engine: EngineSettings
    queues: Mapping[str, Queue]  # declared and implicit
    actor_persister: ActorPersister | None
    list_tenants: TenantSource | None
    resources: Mapping[str, Resource]
    otel: Otel = Otel()

    def triggers(self) -> list[Trigger]:
        return [t for r in self.resources.values() for t in r.triggers.values()]

    def schedules(self) -> list[Schedule]:
        return [s for r in self.resources.values() for s in r.scheduled_actions.values()]

    def summary(self) -> str:
        """ "2 resources, 3 triggers, 1 schedule, 4 queues" """
        counts = [
            (len(self.resources), "resource"),
            (len(self.triggers()), "trigger"),
            (len(self.schedules()), "schedule"),
            (len(self.queues), "queue"),
        ]
        return ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in counts)
