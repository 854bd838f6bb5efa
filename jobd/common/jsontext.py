"""JSON as jobd writes it everywhere: compact, and every value spelled as text.

One encoder for job args, jsonb parameters, the SQL API registry, update actions and HTTP
bodies, so a value looks the same wherever it travels: datetimes in ISO 8601, bytes in
hex, anything else (Decimal, UUID, date) as its exact `str`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def json_text(value: Any) -> str:
    """`value` as compact JSON text."""
    return json.dumps(value, separators=(",", ":"), default=_default)


def json_text_or_none(value: Any) -> str | None:
    """`json_text`, with None staying None (an SQL NULL rather than JSON `null`)."""
    return None if value is None else json_text(value)
