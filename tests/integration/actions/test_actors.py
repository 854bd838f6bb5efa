"""Actor persisters: each kind, store/lookup round trip, lookup failures, precedence."""

from __future__ import annotations

from typing import Any

import pytest

from jobd import model
from jobd.errors import JobdError
from jobd.triggers.actors import (
    ActorLookupError,
    ActorNotFound,
    lookup_actor,
    resolve_actor,
    store_actor,
    store_actor_async,
)

ACTOR = {"id": 7, "email": "seven@example.com", "api_token": "s3cr3t-token", "role": "admin"}


def persister(
    store: tuple[str, ...] | None = None,
    sql: str | None = None,
    args: tuple[str, ...] = (),
    python: str | None = None,
) -> model.ActorPersister:
    return model.ActorPersister(store=store, lookup_sql=sql, lookup_args=args, python=python)


async def test_no_persister_stores_and_returns_the_whole_actor(conn: Any) -> None:
    """Without a persister the stored object is the actor, round trip unchanged."""
    stored = store_actor(None, model.freeze_json(ACTOR))
    assert stored == ACTOR and isinstance(stored, dict)
    assert await lookup_actor(None, stored, conn) == ACTOR
    assert store_actor(None, None) is None and await lookup_actor(None, None, conn) is None


async def test_store_fields_keeps_only_those(conn: Any) -> None:
    """`store: [fields]` keeps those fields; without lookup they are the actor."""
    p = persister(store=("id", "role", "absent"))
    stored = store_actor(p, ACTOR)
    assert stored == {"id": 7, "role": "admin"}
    assert await lookup_actor(p, stored, conn) == {"id": 7, "role": "admin"}


async def test_sql_lookup_round_trip_and_no_row(conn: Any) -> None:
    """`lookup: {sql, args}` reads the current actor; no row is ActorNotFound without values."""
    await conn.execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text, role text);"
        "INSERT INTO users VALUES (7, 'now@example.com', 'owner')"
    )
    p = persister(
        store=("id",), sql="SELECT id, email, role FROM users WHERE id = $1", args=("id",)
    )
    stored = store_actor(p, ACTOR)
    assert stored == {"id": 7}
    assert await lookup_actor(p, stored, conn) == {
        "id": 7,
        "email": "now@example.com",
        "role": "owner",
    }
    await conn.execute("DELETE FROM users")
    with pytest.raises(ActorNotFound) as info:
        await lookup_actor(p, stored, conn)
    assert "7" not in str(info.value) and "id" in str(info.value)


async def test_sql_lookup_missing_field_and_bad_query(conn: Any) -> None:
    """A stored actor lacking an arg, or a failing query, is a clear error without values."""
    p = persister(store=("email",), sql="SELECT 1 WHERE $1::int = 1", args=("id",))
    with pytest.raises(ActorNotFound, match="id"):
        await lookup_actor(p, {"email": "x@example.com"}, conn)
    bad = persister(sql="SELECT $1::int", args=("token",))
    with pytest.raises(ActorLookupError) as info:
        await lookup_actor(bad, {"token": "s3cr3t-token"}, conn)
    assert "s3cr3t" not in str(info.value)


async def test_python_persister_sync_and_async(conn: Any) -> None:
    """`python: "mod:Obj"` with sync or async store/lookup; a None lookup is ActorNotFound."""
    sync = persister(python="tests.data.actions.entry:FieldPersister")
    stored = store_actor(sync, ACTOR)
    assert stored == {"id": 7}
    assert (await lookup_actor(sync, stored, conn))["email"] == "seven@example.com"  # type: ignore[index]
    with pytest.raises(ActorNotFound):
        await lookup_actor(sync, {"id": 8}, conn)

    asy = persister(python="tests.data.actions.entry:AsyncPersister")
    stored = await store_actor_async(asy, ACTOR)
    assert stored == {"uid": 7}
    assert await lookup_actor(asy, stored, conn) == {"id": 7, "looked_up": True}
    with pytest.raises(ActorNotFound):
        await lookup_actor(asy, {"uid": 404}, conn)
    with pytest.raises(JobdError, match="store_actor_async"):
        store_actor(asy, ACTOR)


def test_default_actor_precedence() -> None:
    """An explicit actor wins over default_actor; default_actor applies when none given."""
    default = {"id": 0, "system": True}
    assert resolve_actor({"id": 7}, default) == {"id": 7}
    assert resolve_actor(None, default) == default
    assert resolve_actor(None, None) is None
    assert resolve_actor({}, default) == {}  # an explicit empty actor is still explicit
