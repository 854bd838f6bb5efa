"""The claim whose size is written into its text (ack_and_claim, see jobd.sql.with_demand)."""

from __future__ import annotations

import pytest

from jobd.sql import queries, with_demand


def test_the_claim_size_is_written_in_as_a_plain_int() -> None:
    """Proves the rendered claim has its LIMIT as a literal and no placeholder left, so
    Postgres can keep one cached plan per size."""
    sql = with_demand(queries("jobd")["ack_and_claim"], 20)
    assert "LIMIT 20\n" in sql
    assert "{demand}" not in sql


@pytest.mark.parametrize("demand", [-1, 2.0, "5; DROP TABLE jobd.jobs", True, None])
def test_anything_but_a_non_negative_int_is_refused(demand: object) -> None:
    """Proves nothing but an int the engine computed can reach the statement's text."""
    with pytest.raises(ValueError, match="non-negative int"):
        with_demand(queries("jobd")["ack_and_claim"], demand)  # type: ignore[arg-type]
