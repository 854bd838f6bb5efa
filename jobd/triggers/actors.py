"""Actors (SPEC 1.6): who a job runs on behalf of, kept in the job and looked up fresh.

At enqueue, `resolve_actor(explicit, default_actor)` picks the actor (an explicit one wins;
else the trigger's or schedule's `default_actor`; else none) and `store_actor(persister,
actor)` decides what the job keeps. At each attempt, `lookup_actor(persister, stored, conn)`
turns that back into the current actor. The persister passed in is the one already
resolved by the configuration (trigger/schedule > global), or None.

Persisters:
- none (`None`, or no `store`/`lookup`/`python`): the whole actor is stored and is the actor.
- `store: [fields]`: only those fields are kept (missing ones are left out).
- `lookup: {sql, args}`: `$1..$n` are bound to the stored fields named in `args`, with their
  JSON types (cast in SQL when the column type differs: `WHERE id = $1::uuid`); the first
  row, as a mapping, is the actor. No row: `ActorNotFound`, a failed attempt.
- `python: "mod:Obj"`: `Obj` (a class is instantiated without arguments) has
  `store(actor)` and `lookup(stored)`, each sync or async. A sync `lookup` runs in a thread.

Errors never carry actor values: messages name fields, never what they hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from jobd import model
from jobd.common.entrypoints import EntrypointError, call_maybe_async, load_entrypoint
from jobd.errors import JobdError
from jobd.sql.driver import Connection


class ActorNotFound(JobdError):
    """The stored actor could not be turned back into a current one."""


class ActorLookupError(JobdError):
    """The persister itself failed (bad SQL, a python persister that raised)."""


def resolve_actor(
    explicit: Mapping[str, Any] | None, default_actor: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The actor a request runs as: the one given, else `default_actor`, else None."""
    return explicit if explicit is not None else default_actor


def store_actor(
    persister: model.ActorPersister | None, actor: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """What goes into the job for `actor` (plain JSON data), synchronously.

    A python persister with an `async def store` needs `store_actor_async`.
    """
    if actor is None:
        return None
    if persister is not None and persister.python is not None:
        stored = python_persister(persister.python).store(_plain(actor))
        if hasattr(stored, "__await__"):
            stored.close()
            raise JobdError(
                f"actor persister {persister.python!r} has an async store: use store_actor_async"
            )
        return _as_dict(stored, persister.python)
    return _store_fields(persister, actor)


async def store_actor_async(
    persister: model.ActorPersister | None, actor: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """`store_actor` for every kind of persister, including an async python `store`."""
    if actor is None:
        return None
    if persister is not None and persister.python is not None:
        obj = python_persister(persister.python)
        stored = await call_maybe_async(obj.store, _plain(actor))
        return _as_dict(stored, persister.python)
    return _store_fields(persister, actor)


async def lookup_actor(
    persister: model.ActorPersister | None, stored: Mapping[str, Any] | None, conn: Connection
) -> dict[str, Any] | None:
    """The current actor for `stored` (None when the job has no actor)."""
    if stored is None:
        return None
    if persister is None:
        return _plain(stored)
    if persister.python is not None:
        return await _lookup_python(persister.python, stored)
    if persister.lookup_sql is not None:
        return await _lookup_sql(persister, stored, conn)
    return _plain(stored)


def _store_fields(
    persister: model.ActorPersister | None, actor: Mapping[str, Any]
) -> dict[str, Any]:
    if persister is None or persister.store is None:
        return _plain(actor)
    return {f: _plain_value(actor[f]) for f in persister.store if f in actor}


async def _lookup_sql(
    persister: model.ActorPersister, stored: Mapping[str, Any], conn: Connection
) -> dict[str, Any]:
    missing = [a for a in persister.lookup_args if a not in stored]
    if missing:
        raise ActorNotFound(
            f"actor lookup needs the field(s) {', '.join(missing)} which the stored actor "
            "lacks (check actor_persister.store)"
        )
    args = [stored[a] for a in persister.lookup_args]
    sql = persister.lookup_sql or ""  # set: the caller checked
    try:
        row = await conn.fetchrow(sql, *args)
    except Exception as exc:  # driver errors: their text may quote values, so leave it out
        state = getattr(exc, "sqlstate", None)
        raise ActorLookupError(
            f"actor lookup query failed ({type(exc).__name__}"
            + (f", SQLSTATE {state}" if state else "")
            + ")"
        ) from exc
    if row is None:
        fields = ", ".join(persister.lookup_args) or "no arguments"
        raise ActorNotFound(f"actor lookup found no row for the stored actor (by {fields})")
    return dict(row.items())


async def _lookup_python(entrypoint: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    obj = python_persister(entrypoint)
    try:
        actor = await call_maybe_async(obj.lookup, _plain(stored))
    except JobdError:
        raise
    except Exception as exc:
        raise ActorLookupError(
            f"actor persister {entrypoint!r} lookup raised {type(exc).__name__}"
        ) from exc
    if actor is None:
        raise ActorNotFound(f"actor persister {entrypoint!r} found no actor for the stored one")
    return _as_dict(actor, entrypoint)


@cache
def python_persister(entrypoint: str) -> Any:
    """The persister object behind `python: "mod:Obj"` (a class is instantiated once)."""
    obj = load_entrypoint(entrypoint, context=" (actor_persister)")
    if isinstance(obj, type):
        obj = obj()
    for method in ("store", "lookup"):
        if not callable(getattr(obj, method, None)):
            raise EntrypointError(f"actor persister {entrypoint!r} has no {method}() method")
    return obj


def _as_dict(value: Any, entrypoint: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ActorLookupError(
            f"actor persister {entrypoint!r} returned a {type(value).__name__}, not a mapping"
        )
    return _plain(value)


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _plain_value(v) for k, v in mapping.items()}


def _plain_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, tuple):
        return [_plain_value(v) for v in value]
    return value
