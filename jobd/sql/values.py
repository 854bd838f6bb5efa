"""Runtime values Postgres cannot hold, found before they reach the driver.

    text_problem("a\\x00b")                # 'contains a NUL character (\\u0000), ...'
    json_problem({"n": "\\ud800"}, "actor")  # 'actor.n is not valid UTF-8 (...)'
    loads_json('{"id": NaN}')              # ValueError: NaN is not JSON ...

Postgres `text` and `jsonb` refuse the NUL character, and UTF-8 cannot encode an unpaired
surrogate (what JSON's "\\ud800" decodes to, and what Python makes of command-line bytes
that are not UTF-8). Python's `json` accepts `NaN` and `Infinity`, which are not JSON. A
`bigint` ends at 2**63 - 1. The interfaces (CLI, admin API) check what users send with
these and answer with a usage error naming the field, instead of letting the driver or
the server fail halfway with an error no one can act on.
"""

from __future__ import annotations

import json
import math
from typing import Any

BIGINT_MAX = 2**63 - 1
_MAX_SHOWN = 40


def text_problem(text: str) -> str | None:
    """Why Postgres cannot store `text` (None when it can)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 (it holds an unpaired surrogate or bytes that are not UTF-8)"
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which Postgres text cannot hold"
    return None


def json_problem(value: Any, where: str) -> str | None:
    """The first part of a JSON value (`where` names it, e.g. "actor") that Postgres'
    jsonb cannot hold, as "<where>.<key> <why>"; None when all of it fits."""
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else f"{where} {problem}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value!r}, which is not a JSON number"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(str(key))
            if problem is not None:
                return f"a key of {where} {problem}"
            found = json_problem(item, f"{where}.{_shown(str(key))}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = json_problem(item, f"{where}[{index}]")
            if found:
                return found
    return None


def positive_id(text: str) -> int | None:
    """`text` as an integer from 1 to BIGINT_MAX, in ASCII digits only (`²` and `٣` are
    digits to Python, not to an id); None when it is not one."""
    if text.isascii() and text.isdigit() and 0 < int(text) <= BIGINT_MAX:
        return int(text)
    return None


def positive_id_problem(text: str) -> str:
    """What to say when `positive_id(text)` is None."""
    return f"must be a positive integer of at most {BIGINT_MAX}, got {_shown(text)!r}"


def _shown(key: str) -> str:
    return key if len(key) <= _MAX_SHOWN else key[: _MAX_SHOWN - 3] + "..."


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON (use null or a number)")


def loads_json(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN, Infinity and -Infinity, as JSON does."""
    return json.loads(text, parse_constant=_not_json)
