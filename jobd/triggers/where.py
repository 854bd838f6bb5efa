"""The `where` language (SPEC 1.4): SQL expressions over one table's columns.

A trigger's `where`, a read's `where` and an update action's `{sql: ...}` value are parsed
with Postgres's own grammar (pglast), checked against an allow-list, and embedded in jobd's
queries as the text pglast prints back, never as the user's text.

Usage::

    problems = check_expression("status = 'pending'")          # [] when fine
    expr = parse_expression("deleted_at IS NULL")             # raises WhereError
    check_columns(expr, await table_columns(conn, "public", "orders"))
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

import difflib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast, enums
from pglast.error import Error as PglastError
from pglast.parser import ParseError, parse_sql, scan
from pglast.stream import RawStream

from jobd.errors import JobdError
from jobd.ident import quote_ident, quote_qualified
from jobd.sql import queries

# The functions an expression may call, by group. All are built-in, immutable or stable,
# scalar (not set-returning, not aggregates). Names the grammar rewrites are here too:
# EXTRACT -> extract, POSITION -> position, TRIM -> btrim/ltrim/rtrim, SUBSTRING ... FROM
# -> substring, AT TIME ZONE -> timezone, SIMILAR TO -> similar_to_escape, OVERLAPS.
ALLOWED_FUNCTIONS: frozenset[str] = frozenset(
    {
        # date/time
        "now", "transaction_timestamp", "statement_timestamp", "date_trunc", "date_part",
        "extract", "age", "make_interval", "make_date", "make_time", "make_timestamp",
        "make_timestamptz", "to_timestamp", "to_date", "to_char", "timezone", "date_bin",
        "isfinite", "justify_days", "justify_hours", "justify_interval", "overlaps",
        # string
        "lower", "upper", "initcap", "length", "char_length", "character_length",
        "octet_length", "btrim", "ltrim", "rtrim", "trim", "substr", "substring", "position",
        "strpos", "replace", "translate", "overlay", "concat", "concat_ws", "left", "right",
        "lpad", "rpad", "reverse", "starts_with", "split_part", "format", "regexp_match",
        "regexp_replace", "regexp_like", "regexp_count", "regexp_substr", "regexp_instr",
        "similar_to_escape", "normalize", "is_normalized", "md5", "to_number", "ascii", "chr",
        # math
        "abs", "round", "floor", "ceil", "ceiling", "trunc", "mod", "div", "power", "sqrt",
        "sign", "exp", "ln", "log", "num_nulls", "num_nonnulls",
        # JSON (the operators ->, ->>, #>, #>>, ?, @>, <@ need no entry)
        "jsonb_extract_path", "jsonb_extract_path_text", "jsonb_array_length", "jsonb_typeof",
        "jsonb_path_exists", "jsonb_path_match", "jsonb_build_object", "jsonb_build_array",
        "to_jsonb", "json_extract_path", "json_extract_path_text", "json_array_length",
        "json_typeof", "json_build_object", "json_build_array", "to_json",
        # arrays
        "array_length", "array_lower", "array_upper", "array_position", "array_to_string",
        "cardinality",
    }
)  # fmt: skip
FUNCTION_HINT = "built-in date/time, string, math, JSON and array functions, e.g. now, lower"
# Only for a clearer message: these are rejected anyway, as they are not in the allow-list.
_AGGREGATES = frozenset(
    {"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
     "every", "json_agg", "jsonb_agg", "json_object_agg", "jsonb_object_agg"}
)  # fmt: skip
MAX_EXPRESSION_CHARS = 10_000

# Syntax nodes an expression may contain; anything else is rejected by name.
_ALLOWED_NODES: tuple[type[ast.Node], ...] = (
    ast.A_Expr, ast.A_Const, ast.A_ArrayExpr, ast.A_Indirection, ast.A_Indices,
    ast.BoolExpr, ast.BooleanTest, ast.NullTest, ast.CaseExpr, ast.CaseWhen,
    ast.CoalesceExpr, ast.MinMaxExpr, ast.CollateClause, ast.ColumnRef, ast.FuncCall,
    ast.NamedArgExpr, ast.RowExpr, ast.SQLValueFunction, ast.TypeCast, ast.TypeName,
    ast.String, ast.Integer, ast.Float, ast.Boolean, ast.BitString, ast.JsonIsPredicate,
    ast.JsonFormat,
)  # fmt: skip
_OP = enums.SQLValueFunctionOp
_ALLOWED_VALUE_FUNCTIONS = frozenset(
    {_OP.SVFOP_CURRENT_DATE, _OP.SVFOP_CURRENT_TIME, _OP.SVFOP_CURRENT_TIME_N,
     _OP.SVFOP_CURRENT_TIMESTAMP, _OP.SVFOP_CURRENT_TIMESTAMP_N, _OP.SVFOP_LOCALTIME,
     _OP.SVFOP_LOCALTIME_N, _OP.SVFOP_LOCALTIMESTAMP, _OP.SVFOP_LOCALTIMESTAMP_N}
)  # fmt: skip
_REJECTED_NODES = {
    ast.SubLink: "subqueries are not allowed",
    ast.ParamRef: "parameters ($1, ...) are not allowed",
    ast.GroupingFunc: "GROUPING() is not allowed",
    ast.SetToDefault: "DEFAULT is not allowed",
    ast.WindowDef: "window functions (OVER) are not allowed",
    ast.A_Star: "* is not allowed",
}
# Operators whose built-in result is never boolean: a top-level one is not a condition.
_NON_BOOLEAN_OPERATORS = frozenset({"+", "-", "*", "/", "%", "^", "||", "->", "->>", "#>", "#>>"})

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


class TableNotFoundError(JobdError):
    """The table named in the configuration does not exist (or is not visible)."""

    exit_code = 2


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
        suggestion = [c for c in known if c.lower() == name.lower()]
        suggestion = suggestion or difflib.get_close_matches(name, known, n=1)
        hint = f'; did you mean "{suggestion[0]}"?' if suggestion else ""
        problems.append(f'unknown column "{name}"{hint}')
    return problems


def compile_expression(expr: Expression, alias: str | None = None) -> str:
    """SQL text for jobd's queries: every column quoted, and qualified by `alias` if given."""
    node, problems = _parse(expr.sql)
    if node is None:  # only for an Expression not built by parse_expression
        raise WhereError(expr.sql, problems)
    if alias is not None:
        for found in _walk(node):
            if isinstance(found, ast.ColumnRef):
                found.fields = (ast.String(alias), *(found.fields or ()))
    return _QuotingStream()(node)


async def table_columns(conn: Any, schema: str | None, table: str) -> list[str]:
    """The column names of `schema.table` (`schema` None: as the search_path finds it)."""
    shown = f"{schema}.{table}" if schema else table
    try:
        name = quote_qualified(schema, table) if schema else quote_ident(table)
    except ValueError as exc:
        raise TableNotFoundError(f"invalid table name {shown!r}") from exc
    row = await conn.fetchrow(queries()["table_columns"], name)
    if row is None or row["relid"] is None:
        where = "" if schema else " (looked up via the search_path)"
        raise TableNotFoundError(f'table "{shown}" does not exist{where}')
    return list(row["columns"])


# --- the checks, in order: raw text, tokens, parse, tree, boolean, print-back -----------


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
    problems = _check_tree(node, kind, columns, functions)
    if not problems and boolean:
        problems = _check_boolean(node)
    if problems:
        return problems, None
    # What jobd embeds is this printed text: it must parse back to a tree that passes the
    # same checks and prints the same again.
    sql = RawStream()(node)
    again = _parse(sql)[0]
    if again is None or RawStream()(again) != sql or _check_tree(again, kind, set(), set()):
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


def _walk(root: ast.Node, *, checking: bool = False) -> Iterator[ast.Node]:
    """Every node under `root`, depth-first, without recursion. When `checking`, rejected
    nodes are not entered and only a function call's arguments are (not its OVER etc.)."""
    stack: list[Any] = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(reversed(item))
        elif isinstance(item, ast.Node):
            yield item
            if checking and isinstance(item, (*_REJECTED_NODES, ast.ColumnRef)):
                continue
            if checking and isinstance(item, ast.FuncCall):
                stack.append(item.args)
            else:
                stack.extend(reversed([getattr(item, attr) for attr in item]))


def _check_tree(node: ast.Node, kind: str, columns: set[str], functions: set[str]) -> list[str]:
    """Every problem in the tree; collects the columns and functions it uses."""
    problems: dict[str, None] = {}  # ordered and without repeats
    for found in _walk(node, checking=True):
        message = _REJECTED_NODES.get(type(found))
        if message:
            problems[f"{message} in a {kind}"] = None
        elif isinstance(found, ast.FuncCall):
            problems.update(dict.fromkeys(_check_function(found, kind, functions)))
        elif isinstance(found, ast.ColumnRef):
            problem = _check_column_ref(found, columns)
            if problem:
                problems[problem] = None
        elif isinstance(found, ast.SQLValueFunction):
            if found.op not in _ALLOWED_VALUE_FUNCTIONS:
                name = str(found.op.name).removeprefix("SVFOP_") if found.op else "?"
                problems[f"{name} is not allowed in a {kind}"] = None
        elif isinstance(found, ast.A_Expr) and not _operator_ok(found.name):
            problems[f"operator {_dotted(found.name)} is not allowed in a {kind}"] = None
        elif not isinstance(found, _ALLOWED_NODES):
            problems[f"{type(found).__name__} is not allowed in a {kind}"] = None
    return list(problems)


def _check_function(call: ast.FuncCall, kind: str, functions: set[str]) -> list[str]:
    parts = [getattr(part, "sval", "") or "" for part in call.funcname or ()]
    name = parts[-1] if parts else ""
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "pg_catalog"):
        return [f'function "{".".join(parts)}" is not allowed: only pg_catalog may qualify one']
    if call.over is not None:
        return [f"window functions (OVER) are not allowed in a {kind}"]
    aggregate = call.agg_star or call.agg_distinct or call.agg_order or call.agg_filter
    if aggregate or call.agg_within_group or name in _AGGREGATES:
        return [f'aggregate functions ("{name}") are not allowed in a {kind}']
    if name not in ALLOWED_FUNCTIONS:
        close = difflib.get_close_matches(name, ALLOWED_FUNCTIONS, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return [f'function "{name}" is not allowed (allowed: {FUNCTION_HINT}, ...){hint}']
    functions.add(name)
    return []


def _check_column_ref(ref: ast.ColumnRef, columns: set[str]) -> str | None:
    fields = ref.fields or ()
    if any(isinstance(field, ast.A_Star) for field in fields):
        return "* is not allowed: name the columns"  # t.* or *
    names = [getattr(field, "sval", None) or "" for field in fields]
    if len(names) != 1:
        return f'qualified column reference "{".".join(names)}" is not allowed: use "{names[-1]}"'
    columns.add(names[0])
    return None


def _operator_ok(name: tuple[Any, ...] | None) -> bool:
    parts = [getattr(part, "sval", "") for part in name or ()]
    return len(parts) <= 1 or (len(parts) == 2 and parts[0] == "pg_catalog")


def _dotted(name: tuple[Any, ...] | None) -> str:
    return ".".join(getattr(part, "sval", "") or "" for part in name or ())


def _check_boolean(node: ast.Node) -> list[str]:
    """Reject what is plainly not a condition; Postgres checks the rest when it runs it."""
    plain = False
    if isinstance(node, ast.A_Const):
        plain = not node.isnull and not isinstance(node.val, ast.Boolean)
    elif isinstance(node, ast.A_ArrayExpr | ast.SQLValueFunction):
        plain = True
    elif isinstance(node, ast.A_Expr):
        plain = node.kind == enums.A_Expr_Kind.AEXPR_OP and (
            _dotted(node.name).removeprefix("pg_catalog.") in _NON_BOOLEAN_OPERATORS
        )
    elif isinstance(node, ast.TypeCast):
        type_name = _dotted(node.typeName.names if node.typeName else None)
        plain = type_name.removeprefix("pg_catalog.") not in ("bool", "boolean")
    if plain:
        return [f"not a boolean expression: {RawStream()(node)}"]
    return []


class _QuotingStream(RawStream):
    """RawStream that prints every column reference through `quote_qualified`."""

    def print_node(self, node: Any, is_name: bool = False, is_symbol: bool = False) -> None:
        if isinstance(node, ast.ColumnRef):
            self.write(quote_qualified(*(field.sval for field in node.fields or ())))
            self.separator()
            return
        super().print_node(node, is_name, is_symbol)
