"""The one place identifiers (and the few constants DDL needs) become SQL text.

Runtime values are always bind parameters; only identifiers (schema, table and column
names from the configuration, tenant schema names) are spliced into SQL, and only through
`quote_ident`, after `is_identifier` accepted them where they come from outside. DDL takes
no bind parameters: the constants of the functions jobd installs on users' tables (a
trigger's job template, jobd.triggers.events) and their COMMENTs go through
`quote_literal`.
"""

from __future__ import annotations

import re

# What we accept from configuration and tenant lists: a letter or underscore, then letters,
# digits, underscores or dollar signs, at most 63 bytes (Postgres's NAMEDATALEN - 1).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
MAX_IDENTIFIER_BYTES = 63


def is_identifier(name: str) -> bool:
    """True when `name` is a plain identifier we allow in configuration and tenant names."""
    return bool(_IDENTIFIER.fullmatch(name)) and len(name.encode("utf-8")) <= MAX_IDENTIFIER_BYTES


def quote_ident(name: str) -> str:
    """Quote one identifier for Postgres: always double-quoted, inner quotes doubled."""
    if not name or "\x00" in name:
        raise ValueError(f"invalid identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A string constant, as Postgres's own quote_literal writes it: quotes doubled, and
    with a backslash in it an E'' string with the backslashes doubled, so it reads the same
    whatever standard_conforming_strings says."""
    if "\x00" in text:
        raise ValueError("a string constant cannot hold a NUL character")
    quoted = "'" + text.replace("'", "''").replace("\\", "\\\\") + "'"
    return "E" + quoted if "\\" in text else quoted


def quote_qualified(*parts: str) -> str:
    """Quote a dotted name part by part: quote_qualified("public", "orders")."""
    return ".".join(quote_ident(part) for part in parts)


def split_table_name(table: str) -> tuple[str | None, str]:
    """Split "schema.table" or "table" (unquoted, as written in the config)."""
    schema, dot, name = table.rpartition(".")
    return (schema if dot else None), name
