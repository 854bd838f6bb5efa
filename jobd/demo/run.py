"""`jobd demo`: the daemon on the example configuration, with everything it needs.

Starts the HTTP sink, seeds the example's tables after migrating, kicks every trigger's
scheduler once at start (instead of waiting for its first cron tick) and adds a new order
every few seconds (`demo.order_added`), so jobs visibly flow within seconds of starting.
The example's `orders.process` has `events: [insert, update]`: each new order's job is
enqueued by the database trigger in the inserting transaction, and the sink's
`demo.sink` line for it follows within the same second (without events the demo asks
for a scheduler run instead).
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path
from typing import Any

import structlog

from jobd.daemon.supervisor import Daemon, Generation
from jobd.model import Spec

log = structlog.get_logger("jobd.demo")
NEW_ORDER_EVERY_S = 5.0


class DemoDaemon(Daemon):
    """The daemon plus the demo's seed, sink and a trickle of new orders."""

    def __init__(self, config_path: Path, spec: Spec) -> None:
        super().__init__(config_path, spec)
        self.sink: Any = None
        self.trickle: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        from jobd.demo.sink import sink_url, start_sink

        self.sink = await start_sink()
        seed = resources.files("jobd.demo").joinpath("seed.sql").read_text()
        async with self.pool.acquire() as conn:
            await conn.execute(seed)
        log.info("demo.seeded", sink=sink_url())

    async def on_ready(self, generation: Generation) -> None:
        for trigger in generation.spec.triggers():
            if trigger.scheduler_cron is not None and trigger.state == "active":
                await generation.runtime.enqueuer().schedule_trigger(trigger.resource, trigger.name)
        self.trickle = asyncio.create_task(self._new_orders(), name="jobd:demo-orders")

    async def on_stop(self) -> None:
        """Stop the trickle and the sink (also after a failed start; safe to repeat)."""
        if self.trickle is not None:
            self.trickle.cancel()
            self.trickle = None
        if self.sink is not None:
            sink, self.sink = self.sink, None
            await sink.cleanup()

    async def _new_orders(self) -> None:
        while True:
            await asyncio.sleep(NEW_ORDER_EVERY_S)
            async with self.pool.acquire() as conn:
                order_id = await conn.fetchval(
                    "INSERT INTO public.orders (org_id, total_cents) VALUES ('acme', 4200)"
                    " RETURNING id"
                )
            log.info("demo.order_added", order_id=order_id)
            current = self.current
            if (
                current is not None
                and not current.spec.resources["orders"].triggers["process"].events
            ):
                await current.runtime.enqueuer().schedule_trigger("orders", "process")
