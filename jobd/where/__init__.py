"""The `where` language (SPEC 1.4): SQL expressions over one table's columns, parsed with
Postgres's own grammar, checked against an allow-list and compiled into jobd's queries.
Used by the configuration checks, the update action and the trigger queries alike.

`expression` holds the public API and its decisions; `grammar` what an expression may
contain.
"""

from jobd.where.expression import (
    Expression,
    WhereError,
    check_columns,
    check_expression,
    compile_expression,
    parse_expression,
)
from jobd.where.grammar import ALLOWED_FUNCTIONS

__all__ = [
    "ALLOWED_FUNCTIONS",
    "Expression",
    "WhereError",
    "check_columns",
    "check_expression",
    "compile_expression",
    "parse_expression",
]
