"""The jobs list's filters, read from a query string or a form, and written back into
links (the next page, a bulk action) so every step acts on the same selection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from jobd.engine.jobs import JobState
from jobd.errors import UsageError
from jobd.sql.values import positive_id, text_problem

FIELDS = ("state", "queue", "worker", "error", "pk", "tenant")
MAX_TEXT = 500


@dataclass(frozen=True)
class JobFilter:
    state: str | None = None
    queue: str | None = None
    worker: str | None = None  # a trigger's or a schedule's worker name
    error: str | None = None  # text in any of the job's errors
    pk: str | None = None  # as typed: `42`, `id=42`, `a=1,b=x` or a JSON object
    tenant: str | None = None

    @classmethod
    def read(cls, values: Mapping[str, Any]) -> JobFilter:
        found: dict[str, str | None] = {}
        for name in FIELDS:
            value = values.get(name)
            text = value.strip() if isinstance(value, str) else ""
            problem = text_problem(text) if text else None
            if problem or len(text) > MAX_TEXT:
                raise UsageError(f"filter {name}: {problem or 'too long'}")
            found[name] = text or None
        if found["state"] is not None and found["state"] not in set(JobState):
            raise UsageError(f"unknown state {found['state']!r}: use one of {', '.join(JobState)}")
        return cls(**found)

    def pk_object(self, key_columns: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The primary key as the jobs store it (`args.pk`), or None without one."""
        return None if self.pk is None else parse_pk(self.pk, key_columns)

    def params(self, key_columns: tuple[str, ...] = ()) -> list[Any]:
        """$1..$6 of the console_jobs and console_job_ids queries."""
        pk = self.pk_object(key_columns)
        return [self.state, self.queue, self.worker, self.error, pk, self.tenant]

    def query(self, **extra: Any) -> str:
        """The filter (and `extra`) as a query string, without empty fields."""
        items = {k: v for k, v in {**asdict(self), **extra}.items() if v not in (None, "")}
        return urlencode(items)

    @property
    def active(self) -> bool:
        return any(v is not None for v in asdict(self).values())


def _value(text: str) -> Any:
    """A key value as typed: JSON when it is JSON (42, "42", true), else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def parse_pk(text: str, key_columns: tuple[str, ...] = ()) -> dict[str, Any]:
    """`{"id": 42}`, `id=42`, `a=1,b=x`, or a bare `42` when the key has one column."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"primary key: not a JSON object: {exc}") from None
        if not isinstance(value, dict) or not value:
            raise UsageError("primary key: give a JSON object of its columns")
        return value
    if "=" not in text:
        if len(key_columns) != 1:
            raise UsageError("primary key: name its columns, e.g. id=42 or a=1,b=2")
        return {key_columns[0]: _value(text)}
    pairs = [part.partition("=") for part in text.split(",")]
    if any(not name.strip() or not sep for name, sep, _ in pairs):
        raise UsageError("primary key: write column=value pairs, e.g. id=42 or a=1,b=2")
    return {name.strip(): _value(value.strip()) for name, _, value in pairs}


def cursor(value: object) -> int | None:
    """The keyset of a page (`before`: the last id shown), None for the first page."""
    if value is None or value == "":
        return None
    number = positive_id(str(value))
    if number is None:
        raise UsageError(f"page: {value!r} is not a job id")
    return number
