"""The admin API's enqueue options (issue 15): input, schedule_in / scheduled_at and
priority on trigger and schedule runs, one-off events listed, shown and cancelled like any
job, and every bad option answered 400 with a message naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration import test_admin
from tests.integration.test_admin import Admin, call

admin = test_admin.admin  # fixture: an admin server with a token, orders rows 1 and 2

RUN = "/api/triggers/orders/process/run"
EVENT = "/api/schedules/orders/nightly/run"


async def test_trigger_and_schedule_runs_with_options(admin: Admin) -> None:
    """A row's job with input, schedule_in and priority is `scheduled` and holds the row
    (a second run enqueues nothing); a one-off event (scheduled_at) is listed by state and
    worker, shown with its input, and cancelled."""
    body = {"primary_key": {"id": 1}, "input": {"tone": "firm"}, "schedule_in": "2h"}
    status, first = await call(admin, "POST", RUN, json={**body, "priority": 0})
    assert status == 200 and first["enqueued"], first
    status, again = await call(admin, "POST", RUN, json={"primary_key": {"id": 1}})
    assert (status, again) == (200, {"job_id": None, "enqueued": False})
    status, job = await call(admin, "GET", f"/api/jobs/{first['job_id']}")
    assert (job["state"], job["priority"], job["args"]["input"]) == (
        "scheduled",
        0,
        {"tone": "firm"},
    )
    status, many = await call(
        admin, "POST", RUN, json={"primary_keys": [{"id": 2}], "schedule_in": 30}
    )
    assert status == 200 and len(many["job_ids"]) == 1
    at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    status, event = await call(
        admin, "POST", EVENT, json={"input": {"period": "week"}, "scheduled_at": at}
    )
    assert status == 200, event
    status, listed = await call(admin, "GET", "/api/jobs?state=scheduled&worker=orders.nightly")
    assert [j["id"] for j in listed["jobs"]] == [event["job_id"]]
    status, shown = await call(admin, "GET", f"/api/jobs/{event['job_id']}")
    assert shown["args"]["input"] == {"period": "week"}
    assert datetime.fromisoformat(shown["scheduled_at"]) == datetime.fromisoformat(at)
    cancelled = await call(admin, "POST", f"/api/jobs/{event['job_id']}/cancel")
    assert cancelled == (200, {"id": event["job_id"], "state": "cancelled"})


PAST = "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        (RUN, {"primary_key": {"id": 1}, "schedule_in": "10 parsecs"}, "is not a duration"),
        (RUN, {"primary_key": {"id": 1}, "schedule_in": -5}, "not a duration"),
        (RUN, {"primary_key": {"id": 1}, "schedule_in": True}, "'schedule_in' must be"),
        (RUN, {"primary_key": {"id": 1}, "scheduled_at": PAST}, "is in the past"),
        (RUN, {"primary_keys": [{"id": 1}], "scheduled_at": "soon"}, "is not a timestamp"),
        (RUN, {"primary_key": {"id": 1}, "scheduled_at": "2030-01-01T10:00"}, "no timezone"),
        (
            RUN,
            {"primary_key": {"id": 1}, "schedule_in": "1m", "scheduled_at": "2030-01-01T10:00Z"},
            "not both",
        ),
        (RUN, {"primary_key": {"id": 1}, "input": [1]}, "'input' must be an object"),
        (RUN, {"primary_key": {"id": 1}, "priority": 10}, "priority must be 0 (highest) to 9"),
        (RUN, {"primary_key": {"id": 1}, "priority": "1"}, "'priority' must be an integer"),
        (RUN, {"schedule_in": "1m"}, "need primary_key(s)"),
        (EVENT, {"scheduled_at": PAST}, "is in the past"),
        (EVENT, {"schedule_in": "1 fortnight"}, "is not a duration"),
        (EVENT, {"input": "x"}, "'input' must be an object"),
        (EVENT, {"priority": -1}, "priority must be 0"),
    ],
)
async def test_bad_options_are_400(
    admin: Admin, path: str, body: dict[str, Any], needle: str
) -> None:
    """Each bad option gets 400 and a JSON error naming the mistake; nothing is enqueued."""
    status, answer = await call(admin, "POST", path, json=body)
    assert status == 400, answer
    assert needle in answer["error"] + answer.get("hint", "")
    status, jobs = await call(admin, "GET", "/api/jobs")
    assert jobs["jobs"] == []
