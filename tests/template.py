"""What the per-session template database contains; every test database is a clone of it."""

from __future__ import annotations


async def prepare(url: str) -> None:
    """Install what all tests need in the template database at `url`."""
    return None
