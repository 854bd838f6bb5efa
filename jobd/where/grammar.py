"""What a `where` expression may contain: the allow-lists (functions, syntax nodes, value
functions, operators) and the walk that checks a parsed tree against them. The decisions
are listed in `jobd.where.expression`'s docs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast, enums
from pglast.stream import RawStream

from jobd.errors import closest

# The functions an expression may call, by group. All are built-in, immutable or stable,
# scalar (not set-returning, not aggregates). Names the grammar rewrites are here too:
# EXTRACT -> extract, POSITION -> position, TRIM -> btrim/ltrim/rtrim, SUBSTRING ... FROM
# -> substring, AT TIME ZONE -> timezone, SIMILAR TO -> similar_to_escape, OVERLAPS.
FUNCTION_GROUPS: dict[str, str] = {
    "date/time": """
        now transaction_timestamp statement_timestamp date_trunc date_part extract age
        make_interval make_date make_time make_timestamp make_timestamptz to_timestamp
        to_date to_char timezone date_bin isfinite justify_days justify_hours
        justify_interval overlaps
    """,
    "string": """
        lower upper initcap length char_length character_length octet_length btrim ltrim
        rtrim trim substr substring position strpos replace translate overlay concat
        concat_ws left right lpad rpad reverse starts_with split_part format regexp_match
        regexp_replace regexp_like regexp_count regexp_substr regexp_instr similar_to_escape
        normalize is_normalized md5 to_number ascii chr
    """,
    "math": """
        abs round floor ceil ceiling trunc mod div power sqrt sign exp ln log num_nulls
        num_nonnulls
    """,
    "JSON": """
        jsonb_extract_path jsonb_extract_path_text jsonb_array_length jsonb_typeof
        jsonb_path_exists jsonb_path_match jsonb_build_object jsonb_build_array to_jsonb
        json_extract_path json_extract_path_text json_array_length json_typeof
        json_build_object json_build_array to_json
    """,
    "arrays": """
        array_length array_lower array_upper array_position array_to_string cardinality
    """,
}
# (JSON's operators ->, ->>, #>, #>>, ?, @>, <@ need no entry.)
ALLOWED_FUNCTIONS = frozenset(name for names in FUNCTION_GROUPS.values() for name in names.split())
FUNCTION_HINT = "built-in date/time, string, math, JSON and array functions, e.g. now, lower"
# Only for a clearer message: these are rejected anyway, as they are not in the allow-list.
_AGGREGATE_NAMES = """
    count sum avg min max array_agg string_agg bool_and bool_or every json_agg jsonb_agg
    json_object_agg jsonb_object_agg
"""
_AGGREGATES = frozenset(_AGGREGATE_NAMES.split())

# Syntax nodes an expression may contain; anything else is rejected by name.
_ALLOWED_NODES: tuple[type[ast.Node], ...] = (
    ast.A_Expr,
    ast.A_Const,
    ast.A_ArrayExpr,
    ast.A_Indirection,
    ast.A_Indices,
    ast.BoolExpr,
    ast.BooleanTest,
    ast.NullTest,
    ast.CaseExpr,
    ast.CaseWhen,
    ast.CoalesceExpr,
    ast.MinMaxExpr,
    ast.CollateClause,
    ast.ColumnRef,
    ast.FuncCall,
    ast.NamedArgExpr,
    ast.RowExpr,
    ast.SQLValueFunction,
    ast.TypeCast,
    ast.TypeName,
    ast.String,
    ast.Integer,
    ast.Float,
    ast.Boolean,
    ast.BitString,
    ast.JsonIsPredicate,
    ast.JsonFormat,
)
_OP = enums.SQLValueFunctionOp
_ALLOWED_VALUE_FUNCTIONS = frozenset(
    {
        _OP.SVFOP_CURRENT_DATE,
        _OP.SVFOP_CURRENT_TIME,
        _OP.SVFOP_CURRENT_TIME_N,
        _OP.SVFOP_CURRENT_TIMESTAMP,
        _OP.SVFOP_CURRENT_TIMESTAMP_N,
        _OP.SVFOP_LOCALTIME,
        _OP.SVFOP_LOCALTIME_N,
        _OP.SVFOP_LOCALTIMESTAMP,
        _OP.SVFOP_LOCALTIMESTAMP_N,
    }
)
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


def walk(root: ast.Node, *, checking: bool = False) -> Iterator[ast.Node]:
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


def check_tree(node: ast.Node, kind: str, columns: set[str], functions: set[str]) -> list[str]:
    """Every problem in the tree; collects the columns and functions it uses."""
    problems: dict[str, None] = {}  # ordered and without repeats
    for found in walk(node, checking=True):
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
        close = closest(name, ALLOWED_FUNCTIONS)
        hint = f'; did you mean "{close}"?' if close else ""
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


def check_boolean(node: ast.Node) -> list[str]:
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
