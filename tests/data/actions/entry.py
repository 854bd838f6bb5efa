"""Entrypoints used by the action and actor tests (imported by name, like users' code)."""

from __future__ import annotations

import threading
from typing import Any

from jobd import ActionContext, Cancel, Discard, Snooze

CALLS: list[dict[str, Any]] = []


def sync_action(ctx: ActionContext) -> dict[str, Any]:
    """Runs in a worker thread; records what it saw."""
    CALLS.append(
        {
            "thread": threading.current_thread().name,
            "record": dict(ctx.record or {}),
            "actor": ctx.actor,
            "input": dict(ctx.input),
            "job": ctx.job.id,
        }
    )
    return {"ok": True, "seen": ctx.primary_key}


async def async_action(ctx: ActionContext) -> dict[str, Any]:
    """Writes through the job's connection (commits or rolls back with the job)."""
    await ctx.conn.execute("INSERT INTO audit (job_id, note) VALUES ($1, $2)", ctx.job.id, "hi")
    return {"written": True}


def raising(ctx: ActionContext) -> None:
    """Raises the outcome named in the input."""
    outcome = ctx.input["raise"]
    if outcome == "snooze":
        raise Snooze(30)
    if outcome == "cancel":
        raise Cancel("not needed")
    if outcome == "discard":
        raise Discard("hopeless")
    raise ValueError("plain failure")


class AsyncCallable:
    async def __call__(self, ctx: ActionContext) -> str:
        return "called"


instance = AsyncCallable()
not_callable = 42


class FieldPersister:
    """Sync persister: keeps the id, looks it up in a dict."""

    users = {7: {"id": 7, "email": "seven@example.com", "role": "admin"}}

    def store(self, actor: dict[str, Any]) -> dict[str, Any]:
        return {"id": actor["id"]}

    def lookup(self, stored: dict[str, Any]) -> dict[str, Any] | None:
        return self.users.get(stored["id"])


class AsyncPersister:
    """Async persister."""

    async def store(self, actor: dict[str, Any]) -> dict[str, Any]:
        return {"uid": actor["id"]}

    async def lookup(self, stored: dict[str, Any]) -> dict[str, Any] | None:
        if stored["uid"] == 404:
            return None
        return {"id": stored["uid"], "looked_up": True}


async def noop(ctx: ActionContext) -> dict[str, Any]:
    """Does nothing (benchmarks compare it with an HTTP action)."""
    return {"ref": "noop"}
