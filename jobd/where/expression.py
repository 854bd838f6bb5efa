"""The `where` language (SPEC 1.4): SQL expressions over one table's columns.

A trigger's `where`, a read's `where` and an update action's `{sql: ...}` value are parsed
with Postgres's own grammar (pglast), checked against an allow-list, and embedded in jobd's
queries as the text pglast prints back, never as the user's text.

Usage::

    problems = check_expression("status = 'pending'")          # [] when fine
    expr = parse_expression("deleted_at IS NULL")             # raises WhereError
    check_columns(expr, ["status", "deleted_at"])             # [] when all exist
    sql = compile_expression(expr, alias="r")                 # '"r"."deleted_at" IS NULL'

Decisions (the contract `jobd check` reports against):
- One expression only. The text is wrapped as `SELECT 1 FROM t WHERE (<text>)`; it must
  scan to balanced parentheses with no `;`, produce exactly that one statement with no
  other clause, and print back to text that parses to the same thing again.
- Comments (`--`, `/* */`) are rejected: they are the classic way to cut off the wrapper.
- Column references are bare names (`status`, `"Mixed Case"`, `payload`); qualified ones
  (`t.x`) and `*` are rejected, because jobd qualifies every column itself.
- No subqueries, parameters (`$1`: jobd binds its own), aggregates, window functions, or
  functions outside `ALLOWED_FUNCTIONS` (built-in, immutable or stable: so no `random`,
  `clock_timestamp`, `current_setting`, `pg_sleep`, `nextval`, ...), optionally qualified
  with `pg_catalog`; `current_user`-style values are out, `current_date`-style ones in.
  Operators (unqualified or `pg_catalog`), casts, `CASE`, `IN`, `BETWEEN`, `LIKE`, `IS`,
  arrays, `COLLATE` and `IS JSON` are in; any other syntax node is rejected by name.
- With `boolean=True` an expression that is plainly not boolean (a constant, an array,
  arithmetic, a cast to another type) is rejected; the full type check is Postgres's,
  when `jobd check --db` or `jobd explain` runs the query.
- Positions in messages are 1-based characters of the user's text.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pglast import ast
from pglast.error import Error as PglastError
from pglast.parser import ParseError, parse_sql, scan
from pglast.stream import RawStream

from jobd.errors import JobdError, closest
from jobd.sql.ident import quote_qualified
from jobd.where.grammar import check_boolean, check_tree, walk

MAX_EXPRESSION_CHARS = 10_000
_PREFIX = "SELECT 1 FROM t WHERE ("
_SUFFIX = ")"
_BARE_STATEMENT = "SELECT 1 FROM t"


class WhereError(JobdError):
    """An expression was rejected; `.problems` lists every reason found."""

    exit_code = 2

    def __init__(self, text: str, problems: list[str]) -> None:
        self.text = text
        self.problems = problems
        super().__init__(f"invalid expression {text!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class Expression:
    """A checked expression: the user's text, its normalized SQL, what it references."""

    text: str
    sql: str
    columns: frozenset[str]
    functions: frozenset[str]


def check_expression(text: str, *, boolean: bool = True) -> list[str]:
    """Every problem with `text` as a where (boolean) or `{sql}` (scalar) expression."""
    return _analyse(text, boolean)[0]


def parse_expression(text: str, *, boolean: bool = True) -> Expression:
    """The checked `Expression` for `text`; raises `WhereError` listing its problems."""
    problems, expression = _analyse(text, boolean)
    if expression is None:
        raise WhereError(text, problems or ["invalid expression"])
    return expression


def check_columns(expr: Expression, columns: Collection[str]) -> list[str]:
    """A problem per column `expr` uses that is not in `columns`, with a suggestion."""
    known = list(columns)
    problems = []
    for name in sorted(expr.columns - set(known)):
        suggestion = closest(name, known)
        hint = f'; did you mean "{suggestion}"?' if suggestion else ""
        problems.append(f'unknown column "{name}"{hint}')
    return problems


def compile_expression(expr: Expression, alias: str | None = None) -> str:
    """SQL text for jobd's queries: every column quoted, and qualified by `alias` if given."""
    node, problems = _parse(expr.sql)
    if node is None:  # only for an Expression not built by parse_expression
        raise WhereError(expr.sql, problems)
    if alias is not None:
        for found in walk(node):
            if isinstance(found, ast.ColumnRef):
                found.fields = (ast.String(alias), *(found.fields or ()))
    return _QuotingStream()(node)


def _analyse(text: object, boolean: bool) -> tuple[list[str], Expression | None]:
    kind = "where expression" if boolean else "sql expression"
    if not isinstance(text, str):
        return [f"must be a string, got {type(text).__name__}"], None
    if not text.strip():
        return ["empty expression"], None
    if len(text) > MAX_EXPRESSION_CHARS:
        return [f"expression too long (over {MAX_EXPRESSION_CHARS} characters)"], None
    if "\x00" in text:
        return ["NUL characters are not allowed"], None
    try:
        return _analyse_sql(text, kind, boolean)
    except RecursionError:
        return ["expression is nested too deeply"], None
    except PglastError as exc:  # the parser or printer refused something we let through
        return [f"not a single expression: {exc.args[0] if exc.args else exc}"], None


def _analyse_sql(text: str, kind: str, boolean: bool) -> tuple[list[str], Expression | None]:
    problems = _check_tokens(text, kind)
    if problems:
        return problems, None
    node, problems = _parse(text)
    if node is None:
        return problems, None
    columns: set[str] = set()
    functions: set[str] = set()
    problems = check_tree(node, kind, columns, functions)
    if not problems and boolean:
        problems = check_boolean(node)
    if problems:
        return problems, None
    # What jobd embeds is this printed text: it must parse back to a tree that passes the
    # same checks and prints the same again.
    sql = RawStream()(node)
    again = _parse(sql)[0]
    if again is None or RawStream()(again) != sql or check_tree(again, kind, set(), set()):
        return [f"not a single expression: it does not print back stably ({sql})"], None
    return [], Expression(text, sql, frozenset(columns), frozenset(functions))


def _check_tokens(text: str, kind: str) -> list[str]:
    """Reject, before parsing, what could reach outside the wrapper's parentheses."""
    try:
        tokens = scan(text)
    except ParseError as exc:
        return [_syntax_message(exc, offset=0, length=len(text))]
    problems: list[str] = []
    depth = 0
    for token in tokens:
        at = f"at character {token.start + 1}"
        if token.name in ("SQL_COMMENT", "C_COMMENT"):
            problems.append(f"comments are not allowed in a {kind} ({at})")
        elif token.name == "ASCII_59":
            problems.append(f"not a single expression: ';' {at}")
        elif token.name == "ASCII_40":
            depth += 1
        elif token.name == "ASCII_41":
            depth -= 1
            if depth < 0:
                problems.append(f"not a single expression: unbalanced ')' {at}")
                depth = 0
    if depth > 0:
        problems.append("not a single expression: unbalanced '(' (missing ')')")
    return problems


def _parse(text: str) -> tuple[ast.Node | None, list[str]]:
    """The expression's tree, from the one statement the wrapped text must produce."""
    try:
        statements = parse_sql(_PREFIX + text + _SUFFIX)
    except ParseError as exc:
        return None, [_syntax_message(exc, offset=len(_PREFIX), length=len(text))]
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return None, ["not a single expression: it reads as more than one statement"]
    statement = statements[0].stmt
    node = statement.whereClause
    statement.whereClause = None
    if node is None or RawStream()(statement) != _BARE_STATEMENT:
        return None, ["not a single expression: it adds clauses around the expression"]
    return node, []


def _syntax_message(exc: ParseError, *, offset: int, length: int) -> str:
    message = str(exc.args[0]) if exc.args else "syntax error"
    location = exc.args[1] if len(exc.args) > 1 else None
    if not isinstance(location, int) or location - offset >= length:
        # Past the user's text: the wrapper's ")" or the end of input.
        return "syntax error at end of expression" if message.startswith("syntax") else message
    return f"{message} (at character {max(location - offset, 0) + 1})"


class _QuotingStream(RawStream):
    """RawStream that prints every column reference through `quote_qualified`."""

    def print_node(self, node: Any, is_name: bool = False, is_symbol: bool = False) -> None:
        if isinstance(node, ast.ColumnRef):
            self.write(quote_qualified(*(field.sval for field in node.fields or ())))
            self.separator()
            return
        super().print_node(node, is_name, is_symbol)
