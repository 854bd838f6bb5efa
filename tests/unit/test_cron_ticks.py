"""Cron tick math: due ticks, 6-field seconds-first syntax, timezones and DST, catch_up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobd.engine.config import CronEntry
from jobd.engine.cron import (
    CronError,
    latest_tick,
    next_delay_s,
    plan_ticks,
    tick_spec,
    ticks_between,
    validate_entry,
)
from jobd.engine.jobs import JobSpec

T_UP = datetime(2024, 1, 1, 11, 59, 30, tzinfo=UTC)  # the cluster came up
BERLIN = "Europe/Berlin"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def entry(expression: str = "* * * * *", **kwargs: object) -> CronEntry:
    return CronEntry(name="e", expression=expression, job=JobSpec(worker="w"), **kwargs)  # type: ignore[arg-type]


def test_six_fields_are_seconds_first() -> None:
    """'*/5 * * * * *' fires every 5 seconds; bounds are (after, until]."""
    got = ticks_between("*/5 * * * * *", "UTC", utc(2024, 1, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0, 20))
    assert got == [utc(2024, 1, 1, 0, 0, s) for s in (5, 10, 15, 20)]
    assert ticks_between("0 */2 * * * *", "UTC", utc(2024, 1, 1), utc(2024, 1, 1, 0, 5)) == [
        utc(2024, 1, 1, 0, 2),
        utc(2024, 1, 1, 0, 4),
    ]


def test_latest_tick_is_inclusive() -> None:
    """latest_tick(at) returns a tick exactly at `at`, else the one before."""
    assert latest_tick("*/15 * * * *", "UTC", utc(2024, 1, 1, 10, 15)) == utc(2024, 1, 1, 10, 15)
    at = utc(2024, 1, 1, 10, 14, 59)
    assert latest_tick("*/15 * * * *", "UTC", at) == utc(2024, 1, 1, 10, 0)


def test_timezone_shifts_with_summer_time() -> None:
    """'0 9 * * *' in Berlin is 08:00 UTC in winter and 07:00 UTC in summer."""
    winter = ticks_between("0 9 * * *", BERLIN, utc(2024, 1, 10), utc(2024, 1, 11))
    summer = ticks_between("0 9 * * *", BERLIN, utc(2024, 7, 10), utc(2024, 7, 11))
    assert winter == [utc(2024, 1, 10, 8)] and summer == [utc(2024, 7, 10, 7)]


def test_spring_forward_runs_a_skipped_time_once() -> None:
    """On 2024-03-31 02:30 does not exist in Berlin: the daily job runs once, right after
    the gap (03:00 CEST = 01:00 UTC), and the day has 23 hourly ticks."""
    got = ticks_between("30 2 * * *", BERLIN, utc(2024, 3, 30, 12), utc(2024, 4, 1, 12))
    assert got == [utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 30)]
    hourly = ticks_between("30 * * * *", BERLIN, utc(2024, 3, 30, 23), utc(2024, 3, 31, 22))
    assert len(hourly) == 23


def test_fall_back_runs_a_repeated_time_once_but_hourly_twice() -> None:
    """On 2024-10-27 02:30 happens twice in Berlin: a daily 02:30 job runs once (the first
    occurrence, 00:30 UTC); an hourly job runs in both hours (25 ticks that day)."""
    got = ticks_between("30 2 * * *", BERLIN, utc(2024, 10, 26, 12), utc(2024, 10, 28, 12))
    assert got == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]
    hourly = ticks_between("30 * * * *", BERLIN, utc(2024, 10, 26, 22), utc(2024, 10, 27, 23))
    assert len(hourly) == 25
    assert latest_tick("30 2 * * *", BERLIN, utc(2024, 10, 27, 1, 45)) == utc(2024, 10, 27, 0, 30)


def test_on_time_ticks_run_whatever_catch_up_says() -> None:
    """A tick after the cluster came up runs with catch_up none; the ledger moves to it."""
    plan = plan_ticks(
        entry(), last=utc(2024, 1, 1, 11, 59), now=utc(2024, 1, 1, 12, 0, 5), up_since=T_UP
    )
    assert plan.run == [utc(2024, 1, 1, 12)] and plan.advance_to == utc(2024, 1, 1, 12)


def test_nothing_due_leaves_the_ledger_alone() -> None:
    """No tick after the ledger: nothing runs, advance_to is None."""
    plan = plan_ticks(
        entry(), last=utc(2024, 1, 1, 12), now=utc(2024, 1, 1, 12, 0, 50), up_since=T_UP
    )
    assert plan.run == [] and plan.advance_to is None


@pytest.mark.parametrize(
    ("catch_up", "expected_minutes"),
    [("none", []), ("latest", [60]), ("all", list(range(51, 61)))],
)
def test_catch_up_after_downtime(catch_up: str, expected_minutes: list[int]) -> None:
    """After an hour down (ledger at 11:00, the cluster up since 12:00:15, now 12:00:45,
    every minute, window 10 min): none runs nothing, latest runs 12:00 only, all runs
    11:51..12:00 (the backfill, 11:51..11:59, counted as caught up); the ledger always ends
    at the newest tick, 12:00, and every tick not run is listed as dropped."""
    e = entry(catch_up=catch_up, catch_up_window_s=600)
    up = utc(2024, 1, 1, 12, 0, 15)
    plan = plan_ticks(e, last=utc(2024, 1, 1, 11), now=utc(2024, 1, 1, 12, 0, 45), up_since=up)
    assert plan.run == [utc(2024, 1, 1, 11) + timedelta(minutes=m) for m in expected_minutes]
    assert plan.advance_to == utc(2024, 1, 1, 12)
    ran = set(plan.run)
    assert len(plan.dropped) == 60 - len(ran)
    assert not ran & set(plan.dropped)


def test_catch_up_all_is_bounded_per_step() -> None:
    """With more due ticks than the limit, a step runs the oldest `limit` and advances the
    ledger only to the last of them; the next step continues."""
    e = entry(catch_up="all", catch_up_window_s=3600)
    now = utc(2024, 1, 1, 12, 0, 45)
    first = plan_ticks(e, last=utc(2024, 1, 1, 11), now=now, up_since=T_UP, limit=3)
    assert first.run == [utc(2024, 1, 1, 11, m) for m in (1, 2, 3)]
    assert first.advance_to == utc(2024, 1, 1, 11, 3)
    rest = plan_ticks(e, last=first.advance_to, now=now, up_since=T_UP, limit=100)
    assert rest.run[0] == utc(2024, 1, 1, 11, 4) and rest.run[-1] == utc(2024, 1, 1, 12)


def test_next_delay_is_the_nearest_tick() -> None:
    """The loop sleeps until the nearest tick of any entry."""
    entries = [entry("*/10 * * * * *"), entry("0 * * * *")]
    assert next_delay_s(entries, utc(2024, 1, 1, 0, 0, 3)) == pytest.approx(7.0)


def test_tick_spec_carries_tick_and_overlap_key() -> None:
    """skip → uniq_key 'cron:<name>' without hold; allow → the template's (no) key; the
    tick goes into meta.cron_tick in UTC ISO form, the template's args stay."""
    job = JobSpec(worker="w", args={"a": 1}, meta={"m": 2})
    skip = CronEntry(name="n", expression="* * * * *", job=job, timezone=BERLIN)
    spec = tick_spec(skip, datetime(2024, 1, 1, 13, tzinfo=UTC))
    assert spec.uniq_key == "cron:n" and spec.args == {"a": 1}
    assert spec.meta == {"m": 2, "cron": "n", "cron_tick": "2024-01-01T13:00:00+00:00"}
    allow = CronEntry(name="n", expression="* * * * *", job=job, overlap="allow")
    assert tick_spec(allow, utc(2024, 1, 1)).uniq_key is None


@pytest.mark.parametrize(
    ("expression", "tz"),
    [("* * *", "UTC"), ("61 * * * *", "UTC"), ("* * * * *", "Mars/Base")],
)
def test_bad_entries_are_rejected(expression: str, tz: str) -> None:
    """A wrong field count, an out-of-range value or an unknown timezone is a CronError."""
    with pytest.raises(CronError):
        validate_entry(entry(expression, timezone=tz))


def test_nicknames_are_accepted() -> None:
    """@hourly-style nicknames work."""
    validate_entry(entry("@hourly"))
    assert ticks_between("@hourly", "UTC", utc(2024, 1, 1), utc(2024, 1, 1, 2)) == [
        utc(2024, 1, 1, 1),
        utc(2024, 1, 1, 2),
    ]


def test_a_failover_loses_no_tick_however_long_ago() -> None:
    """While the cluster was up (a node has run since 10:00) a tick is on time however
    long ago it was: a leader gap of 20 minutes runs every tick of it with catch_up none,
    and drops nothing."""
    plan = plan_ticks(
        entry(),
        last=utc(2024, 1, 1, 11, 40),
        now=utc(2024, 1, 1, 12, 0, 5),
        up_since=utc(2024, 1, 1, 10),
    )
    assert plan.run == [utc(2024, 1, 1, 11, 40) + timedelta(minutes=m) for m in range(1, 21)]
    assert plan.caught_up == 0 and plan.dropped == []


def test_catch_up_ticks_of_a_skip_entry_are_keyed_by_tick() -> None:
    """With overlap skip, a backfilled missed tick gets the key cron:<name>:<tick> (each one
    runs once, even while another run is incomplete) and meta.cron_catch_up; an on-time
    tick keeps the shared key cron:<name>."""
    e = CronEntry(name="n", expression="* * * * *", job=JobSpec(worker="w"))
    backfill = tick_spec(e, utc(2024, 1, 1, 11), catch_up=True)
    assert backfill.uniq_key == "cron:n:2024-01-01T11:00:00+00:00"
    assert backfill.meta["cron_catch_up"] is True
    assert tick_spec(e, utc(2024, 1, 1, 12)).uniq_key == "cron:n"
