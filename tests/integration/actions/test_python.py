"""The python action: sync in a thread, async awaited, outcomes propagate, import errors."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jobd import Cancel, Discard, Snooze, model
from jobd.actions.build import ActionServices, build_action
from jobd.common.entrypoints import EntrypointError
from tests.data.actions import entry
from tests.integration.actions.conftest import make_ctx, make_resource


def python(entrypoint: str) -> Any:
    action = model.Action("act", "python", python=entrypoint)
    return build_action(make_resource({"act": action}), action, ActionServices())


async def test_sync_entrypoint_runs_in_a_thread_with_full_context() -> None:
    """A sync callable runs off the loop thread and gets record, actor, input and job."""
    entry.CALLS.clear()
    action = python("tests.data.actions.entry:sync_action")
    ctx = make_ctx(
        record={"id": 1, "status": "pending"},
        primary_key={"id": 1},
        actor={"id": 7},
        input={"period": "day"},
    )
    result = await action.run(ctx)
    assert result == {"ok": True, "seen": {"id": 1}}
    (call,) = entry.CALLS
    assert call["thread"] != threading.current_thread().name
    assert call["record"] == {"id": 1, "status": "pending"}
    assert call["actor"] == {"id": 7} and call["input"] == {"period": "day"}
    assert call["job"] == 1234


async def test_async_entrypoint_writes_with_the_callers_transaction(conn: Any) -> None:
    """An async entrypoint's writes through ctx.conn commit or roll back with the caller."""
    await conn.execute("CREATE TABLE audit (job_id bigint, note text)")
    action = python("tests.data.actions.entry:async_action")
    async with conn.transaction():
        assert await action.run(make_ctx(conn)) == {"written": True}
    tx = conn.transaction()
    await tx.start()
    await action.run(make_ctx(conn))
    await tx.rollback()
    assert await conn.fetchval("SELECT count(*) FROM audit") == 1


async def test_async_callable_object() -> None:
    """An object with an async __call__ is awaited."""
    assert await python("tests.data.actions.entry:instance").run(make_ctx()) == "called"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("snooze", Snooze), ("cancel", Cancel), ("discard", Discard), ("other", ValueError)],
)
async def test_outcomes_propagate_unchanged(name: str, expected: type[Exception]) -> None:
    """Snooze/Cancel/Discard (and any other exception) reach the caller as raised."""
    action = python("tests.data.actions.entry:raising")
    with pytest.raises(expected) as info:
        await action.run(make_ctx(input={"raise": name}))
    if name == "snooze":
        assert isinstance(info.value, Snooze) and info.value.seconds == 30


@pytest.mark.parametrize(
    ("entrypoint", "fragment"),
    [
        ("tests.data.actions.nope:fn", "ModuleNotFoundError"),
        ("tests.data.actions.entry:nope", "has no attribute 'nope'"),
        ("tests.data.actions.broken:fn", "broken on purpose"),
        ("tests.data.actions.entry", "must look like"),
        ("tests.data.actions.entry:not_callable", "is not callable"),
    ],
)
def test_unimportable_entrypoint_is_a_clear_error(entrypoint: str, fragment: str) -> None:
    """A bad entrypoint fails at build time with a JobdError naming it and the reason."""
    with pytest.raises(EntrypointError) as info:
        python(entrypoint)
    message = str(info.value)
    assert entrypoint in message and fragment in message and "'act'" in message
