"""Fixtures for action tests: a connection on the test's database, contexts and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from jobd import model
from jobd.actions.base import ActionContext
from jobd.engine.jobs import Job
from jobd.sql.db import connect


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Any]:
    """One connection (jobd codecs) on this test's fresh database."""
    c = await connect(database_url)
    try:
        yield c
    finally:
        await c.close()


def make_job(job_id: int = 1234, attempt: int = 1, **args: Any) -> Job:
    now = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    return Job(
        id=job_id,
        queue="orders",
        worker="orders.process",
        args=dict(args),
        meta={},
        tags=[],
        attempt=attempt,
        max_attempts=5,
        priority=2,
        inserted_at=now,
        scheduled_at=now,
        attempted_at=now,
        attempted_by="node-1",
    )


def make_resource(
    actions: Mapping[str, model.Action] | None = None,
    *,
    name: str = "orders",
    table_schema: str | None = "public",
    table_name: str = "orders",
) -> model.Resource:
    return model.Resource(
        name=name,
        table=f"{table_schema}.{table_name}" if table_schema else table_name,
        table_schema=table_schema,
        table_name=table_name,
        primary_key=None,
        multitenancy=None,
        actions=dict(actions or {}),
        reads={},
        triggers={},
        scheduled_actions={},
        list_tenants=None,
    )


def make_ctx(conn: Any = None, **fields: Any) -> ActionContext:
    fields.setdefault("job", make_job())
    fields.setdefault("resource", "orders")
    fields.setdefault("trigger", "process")
    fields.setdefault("log", structlog.get_logger("jobd.test"))
    return ActionContext(conn=conn, **fields)
