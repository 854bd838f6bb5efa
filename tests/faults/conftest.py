"""Fault-injection tests (issue 7): the `faults` marker, registered here as well as in
pyproject so that running this directory alone still works under `--strict-markers`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: fault-injection tests (kill -9, database restart, hostile input)"
    )
