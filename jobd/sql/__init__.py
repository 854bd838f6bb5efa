"""All of jobd's SQL: the schema, migrations and named queries, loaded from .sql files.

Query files in `queries/` hold blocks that start with `-- name: NAME` followed by comment
lines that say what `$n` are. `{schema}` is replaced by the quoted schema name once, at
load, so a query is a plain string by the time it reaches asyncpg.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from jobd.sql.ident import quote_ident

_NAME = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{3,})_(\w+)\.sql$")


def _read(*parts: str) -> str:
    return resources.files(__package__).joinpath(*parts).read_text(encoding="utf-8")


def render(sql: str, schema: str) -> str:
    """Put the quoted schema name where `{schema}` stands."""
    return sql.replace("{schema}", quote_ident(schema))


@cache
def _raw_queries() -> dict[str, str]:
    queries: dict[str, str] = {}
    folder = resources.files(__package__).joinpath("queries")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        text = entry.read_text(encoding="utf-8")
        marks = list(_NAME.finditer(text))
        for mark, following in zip(marks, [*marks[1:], None], strict=True):
            end = following.start() if following else len(text)
            name = mark.group(1)
            if name in queries:
                raise RuntimeError(f"query {name!r} defined twice (in {entry.name})")
            queries[name] = text[mark.end() : end].strip()
    return queries


class Queries(dict[str, str]):
    """Named queries rendered for one schema; a missing name is a programming error."""

    def __missing__(self, key: str) -> str:
        raise KeyError(f"no SQL query named {key!r} in jobd/sql/queries/")


@cache
def queries(schema: str = "jobd") -> Queries:
    """All named queries with `{schema}` rendered."""
    return Queries({name: render(sql, schema) for name, sql in _raw_queries().items()})


def with_demand(sql: str, demand: int) -> str:
    """`sql` with `{demand}` replaced by `demand`, an int the engine computed (never a value
    from outside): for a LIMIT whose plan Postgres should cache (see ack_and_claim)."""
    if type(demand) is not int or demand < 0:
        raise ValueError(f"a claim's size must be a non-negative int, not {demand!r}")
    return sql.replace("{demand}", str(demand))


def schema_sql(schema: str = "jobd") -> str:
    """The tables a fresh install creates (the baseline, see BASELINE)."""
    return render(_read("schema.sql"), schema)


def functions_sql(schema: str = "jobd") -> str:
    """Every function of jobd's schema, created or replaced (see functions.sql)."""
    return render(_read("functions.sql"), schema)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


# The migrations schema.sql already contains: release 0.1's, whose files were folded into
# it. A fresh install records them as applied; migrations/ holds only later ones.
BASELINE = (Migration(1, "initial", ""), Migration(2, "sql_api", ""))


def migrations(schema: str = "jobd") -> list[Migration]:
    """The numbered migrations, oldest first, rendered for `schema`."""
    found: list[Migration] = []
    folder = resources.files(__package__).joinpath("migrations")
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            sql = render(entry.read_text(encoding="utf-8"), schema)
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    return sorted(found, key=lambda m: m.version)
