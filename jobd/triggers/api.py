"""Programmatic enqueues for the operator interfaces (the CLI, the admin API, the demo):
`jobd.Client` over the daemon's own pool, so every way of asking for work goes through the
SQL API's functions, builds the same jobs and gets the same answers.

    jobs = Enqueuer(spec, pool, "jobd")       # or runtime.enqueuer()
    await jobs.run_trigger("orders", "process", {"id": 42}, actor={"id": 7})  # id | None
    await jobs.schedule_trigger("orders", "process")  # AshOban `schedule`: scan now

What this adds to the client: an actor persister written in Python (`python:`) cannot run
in SQL, so its `store` runs here and the SQL function keeps what it returned. Programmatic
trigger runs do not apply `where` when enqueueing: the worker re-checks it and cancels a
job whose row does not match (`trigger_no_longer_applies`), as AshOban's
`run_oban_trigger` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobd.client import Client
from jobd.model import Spec
from jobd.sql.driver import Pool
from jobd.triggers.actors import store_actor_async


class Enqueuer(Client):
    """The client of a configuration: its Python actor persisters run before the call."""

    def __init__(self, spec: Spec, pool: Pool, schema: str) -> None:
        super().__init__(pool=pool, schema=schema)
        self.spec = spec

    async def store_actor(
        self, resource: str, name: str, actor: Mapping[str, Any] | None, *, schedule: bool
    ) -> Mapping[str, Any] | None:
        res = self.spec.resources.get(resource)
        named = {} if res is None else res.scheduled_actions if schedule else res.triggers
        found = named.get(name)
        persister = None if found is None else found.actor_persister
        if actor is None or persister is None or persister.python is None:
            return actor  # the SQL function applies field persisters itself
        return await store_actor_async(persister, actor)
