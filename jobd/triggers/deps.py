"""What the workers of triggers and schedules need, and nothing more: the pool, jobd's
schema, the tables and the actions. `TriggerRuntime` builds one and hands it to each
worker; tests and tools can build one directly."""

from __future__ import annotations

from dataclasses import dataclass

from jobd.actions.build import Actions
from jobd.sql.driver import Pool
from jobd.triggers.tables import Tables


@dataclass(frozen=True, slots=True)
class Deps:
    pool: Pool
    schema: str
    tables: Tables
    actions: Actions
