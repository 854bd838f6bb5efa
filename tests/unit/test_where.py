"""The `where` language: what it accepts, what it rejects (and says), how it compiles."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pglast import ast, parse_sql

from jobd.errors import JobdError
from jobd.where import (
    ALLOWED_FUNCTIONS,
    Expression,
    WhereError,
    check_columns,
    check_expression,
    compile_expression,
    parse_expression,
)

# (expression, the columns it references)
GOOD = [
    # the spec's examples
    (
        "processed IS NOT TRUE AND inserted_at < now() - interval '1 hour'",
        {"processed", "inserted_at"},
    ),
    ("status = 'pending'", {"status"}),
    ("payload->>'kind' = 'x'", {"payload"}),
    ("deleted_at IS NULL", {"deleted_at"}),
    ("processed IS NOT TRUE AND status = 'pending'", {"processed", "status"}),
    # operators, tests and lists
    ("a IS DISTINCT FROM b", {"a", "b"}),
    ("a IS NOT DISTINCT FROM 1", {"a"}),
    ("flag IS TRUE OR flag IS UNKNOWN", {"flag"}),
    ("a BETWEEN 1 AND 10", {"a"}),
    ("a NOT BETWEEN SYMMETRIC 1 AND 10", {"a"}),
    ("status IN ('a', 'b', 'c')", {"status"}),
    ("status NOT IN ('a')", {"status"}),
    ("name LIKE 'x%' OR name ILIKE '%y'", {"name"}),
    ("name ~ '^a' AND name !~* 'b'", {"name"}),
    ("name SIMILAR TO 'a%'", {"name"}),
    ("id = ANY(ARRAY[1, 2, 3])", {"id"}),
    ("id <> ALL('{1,2}'::int[])", {"id"}),
    ("tags[1] = 'x'", {"tags"}),
    ("tags @> ARRAY['x'] AND cardinality(tags) > 0", {"tags"}),
    ("(a, b) = (1, 2)", {"a", "b"}),
    ("NOT (a AND b)", {"a", "b"}),
    ("a % 2 = 0 AND b * 3 / 2 >= 1.5 AND c ^ 2 < 10", {"a", "b", "c"}),
    ("first || ' ' || last = 'a b'", {"first", "last"}),
    # JSON operators and functions
    ("payload -> 'a' ->> 'b' = 'x'", {"payload"}),
    ("payload #>> '{a,b}' = 'x' AND payload #> '{a}' IS NOT NULL", {"payload"}),
    ("payload ? 'k' AND payload @> '{\"a\": 1}' AND '{}' <@ payload", {"payload"}),
    ("jsonb_typeof(payload) = 'object'", {"payload"}),
    ("jsonb_array_length(payload -> 'items') > 2", {"payload"}),
    ("json_extract_path_text(doc, 'a') = 'b'", {"doc"}),
    ("payload IS JSON", {"payload"}),
    # casts, CASE, COALESCE & co
    ("amount::numeric > 10", {"amount"}),
    ("CAST(amount AS bigint) > 10", {"amount"}),
    ("CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END = 'pos'", {"a"}),
    ("coalesce(retries, 0) < 3", {"retries"}),
    ("nullif(name, '') IS NULL", {"name"}),
    ("greatest(a, b) > least(c, 1)", {"a", "b", "c"}),
    ("name COLLATE \"C\" < 'b'", {"name"}),
    # date and time
    ("created_at > current_timestamp - interval '1 day'", {"created_at"}),
    ("day = current_date", {"day"}),
    ("ts < localtimestamp", {"ts"}),
    ("date_trunc('hour', ts) = date_trunc('hour', now())", {"ts"}),
    ("extract(epoch FROM now() - ts) > 60", {"ts"}),
    ("date_part('dow', ts) = 1", {"ts"}),
    ("age(born) > interval '18 years'", {"born"}),
    ("ts AT TIME ZONE 'Europe/Berlin' > '2024-01-01'", {"ts"}),
    ("ts > now() - make_interval(mins => 5)", {"ts"}),
    ("to_timestamp(epoch_s) > now()", {"epoch_s"}),
    # strings and math
    ("lower(email) LIKE '%@example.com'", {"email"}),
    ("pg_catalog.lower(email) = 'x'", {"email"}),
    ("length(trim(name)) > 0", {"name"}),
    ("trim(BOTH ' ' FROM name) <> ''", {"name"}),
    ("substring(code FROM 1 FOR 2) = 'AB'", {"code"}),
    ("position('@' IN email) > 1", {"email"}),
    ("starts_with(code, 'X') AND split_part(code, '-', 2) = '1'", {"code"}),
    ("regexp_match(code, '^[A-Z]+') IS NOT NULL", {"code"}),
    ("format('%s-%s', a, b) = 'x-y'", {"a", "b"}),
    ("abs(delta) < 1 AND round(price, 2) = 1.5 AND mod(id, 10) = 0", {"delta", "price", "id"}),
    # identifiers: quoted, mixed case, keywords
    ("\"Status\" = 'x'", {"Status"}),
    ('"order" > 1', {"order"}),
    ("Status = 'x'", {"status"}),
    ("(comp).field = 1", {"comp"}),
    ("TRUE", set()),
    ("NULL", set()),
    ("paren = '(' OR paren = ')'", {"paren"}),
    ("note = 'it''s -- not a comment; /* nor this */'", {"note"}),
]

# (expression, a fragment of the one problem expected)
BAD = [
    # injection through the wrapper "SELECT 1 FROM t WHERE (<expr>)"
    ("true) OR (1=1", "unbalanced ')' at character 5"),
    ("1); DROP TABLE x; --", "not a single expression"),
    ("1); DROP TABLE x; --", "';' at character 3"),
    ("a = 1) UNION SELECT 1 FROM t WHERE (true", "unbalanced ')'"),
    ("a = 1) GROUP BY (1", "unbalanced ')'"),
    ("a = 1 ) LIMIT 1 --", "not a single expression"),
    ("a = 1 -- comment", "comments are not allowed in a where expression (at character 7)"),
    ("a /* x */ = 1", "comments are not allowed"),
    ("a = 1 /* ) OR (true */", "comments are not allowed"),
    ("a = 1; SELECT 1", "';' at character 6"),
    ("((a = 1)", "unbalanced '('"),
    ("a = 1 GROUP BY 1", 'syntax error at or near "GROUP" (at character 7)'),
    ("a = 1 LIMIT 1", 'syntax error at or near "LIMIT"'),
    ("a = 'x", "unterminated quoted string"),
    ('"a = 1', "unterminated quoted identifier"),
    ("a = $$x", "unterminated dollar-quoted string"),
    ("a = 'x\x00'", "NUL characters are not allowed"),
    # plain syntax errors, with positions in the user's text
    ("a FROM b", 'syntax error at or near "FROM" (at character 3)'),
    ("a =", "syntax error at end of expression"),
    ("SELECT 1", "subqueries are not allowed"),  # it reads as "(SELECT 1)"
    ("1 2", 'syntax error at or near "2" (at character 3)'),
    ("", "empty expression"),
    ("   ", "empty expression"),
    ("x" * 10_001, "expression too long"),
    # subqueries, in every disguise
    ("EXISTS (SELECT 1 FROM users)", "subqueries are not allowed in a where expression"),
    ("id IN (SELECT id FROM users)", "subqueries are not allowed"),
    ("id = ANY(ARRAY(SELECT 1))", "subqueries are not allowed"),
    ("(SELECT true)", "subqueries are not allowed"),
    ("lower((SELECT 'x')) = 'x'", "subqueries are not allowed"),
    # parameters: jobd binds its own
    ("id = $1", "parameters ($1, ...) are not allowed"),
    ("lower($2) = 'x'", "parameters ($1, ...) are not allowed"),
    # functions outside the allow-list
    ("pg_sleep(10) IS NULL", 'function "pg_sleep" is not allowed (allowed: built-in'),
    ("set_config('a.b', 'c', false) = 'c'", 'function "set_config" is not allowed'),
    ("current_setting('jobd.x') = 'y'", 'function "current_setting" is not allowed'),
    ("random() < 0.5", 'function "random" is not allowed'),
    ("clock_timestamp() > ts", 'function "clock_timestamp" is not allowed'),
    ("nextval('s') > 1", 'function "nextval" is not allowed'),
    ("pg_read_file('/etc/passwd') = ''", 'function "pg_read_file" is not allowed'),
    ("lo_import('/etc/passwd') > 0", 'function "lo_import" is not allowed'),
    ("dblink('x', 'y') IS NULL", 'function "dblink" is not allowed'),
    ("generate_series(1, 2) = 1", 'function "generate_series" is not allowed'),
    ("lowr(a) = 'x'", 'did you mean "lower"?'),
    ("\"LOWER\"(a) = 'x'", 'function "LOWER" is not allowed'),
    ("public.lower(a) = 'x'", 'function "public.lower" is not allowed: only pg_catalog'),
    ("a OPERATOR(public.=) 1", "operator public.= is not allowed"),
    # aggregates and windows
    ("count(*) > 1", 'aggregate functions ("count") are not allowed'),
    ("sum(a) > 1", 'aggregate functions ("sum") are not allowed'),
    ("count(DISTINCT a) > 1", "aggregate functions"),
    ("row_number() OVER () = 1", "window functions (OVER) are not allowed"),
    ("GROUPING(a) = 1", "GROUPING() is not allowed"),
    # column references
    ("t.x = 1", 'qualified column reference "t.x" is not allowed: use "x"'),
    ("a.b.c = 1", 'qualified column reference "a.b.c" is not allowed'),
    ("t.* IS NULL", "* is not allowed"),
    ("(comp).* IS NULL", "* is not allowed"),
    # other constructs
    ("current_user = 'x'", "CURRENT_USER is not allowed"),
    ("session_user = 'x'", "SESSION_USER is not allowed"),
    ("xmlelement(name a) IS NULL", "XmlExpr is not allowed"),
    ("DEFAULT", "DEFAULT is not allowed"),
    # not a condition
    ("1", "not a boolean expression: 1"),
    ("'pending'", "not a boolean expression"),
    ("a + 1", "not a boolean expression: a + 1"),
    ("payload ->> 'kind'", "not a boolean expression"),
    ("amount::int", "not a boolean expression"),
    ("ARRAY[true]", "not a boolean expression"),
    ("current_date", "not a boolean expression"),
]


@pytest.mark.parametrize(("text", "columns"), GOOD)
def test_accepted_expressions(text: str, columns: set[str]) -> None:
    """Proves each supported construct is accepted and its columns are found."""
    assert check_expression(text) == []
    expr = parse_expression(text)
    assert expr.text == text
    assert expr.columns == frozenset(columns)
    assert expr.functions <= ALLOWED_FUNCTIONS
    assert check_expression(expr.sql) == []  # the normalized form is itself valid


@pytest.mark.parametrize(("text", "fragment"), BAD)
def test_rejected_expressions(text: str, fragment: str) -> None:
    """Proves each unsafe or invalid expression is rejected with the expected message."""
    problems = check_expression(text)
    assert problems, f"{text!r} was accepted"
    assert any(fragment in problem for problem in problems), problems
    with pytest.raises(WhereError) as info:
        parse_expression(text)
    assert info.value.problems == problems
    assert isinstance(info.value, JobdError)


def test_spec_example_normalizes() -> None:
    """Proves the spec's example gets pglast's normalized SQL and its functions recorded."""
    expr = parse_expression("processed IS NOT TRUE AND inserted_at < now() - interval '1 hour'")
    assert expr.sql == (
        "processed IS NOT TRUE AND inserted_at < now() - CAST('1 hour' AS interval)"
    )
    assert expr.functions == frozenset({"now"})


@pytest.mark.parametrize(
    "text",
    [
        "now()",
        "price * 1.1",
        "coalesce(retries, 0) + 1",
        "'done'",
        "lower(name)",
        "NULL",
        "payload -> 'a'",
        "ARRAY[1, 2]",
        "current_timestamp",
    ],
)
def test_scalar_mode_accepts_values(text: str) -> None:
    """Proves boolean=False (update `{sql}` values) accepts any safe scalar expression."""
    assert check_expression(text, boolean=False) == []
    assert parse_expression(text, boolean=False).text == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(SELECT max(id) FROM t)", "subqueries are not allowed in a sql expression"),
        ("nextval('seq')", 'function "nextval" is not allowed'),
        ("$1", "parameters"),
        ("1; DELETE FROM t", "';'"),
    ],
)
def test_scalar_mode_keeps_the_safety_rules(text: str, fragment: str) -> None:
    """Proves boolean=False rejects the same unsafe constructs as a where expression."""
    assert any(fragment in p for p in check_expression(text, boolean=False))


def test_several_problems_are_all_reported() -> None:
    """Proves every problem in one expression is listed, each once."""
    problems = check_expression("pg_sleep(1) IS NULL AND t.x = $1 AND pg_sleep(2) IS NULL")
    assert len(problems) == 3
    assert any("pg_sleep" in p for p in problems)
    assert any("t.x" in p for p in problems)
    assert any("parameters" in p for p in problems)


def test_check_columns_suggests() -> None:
    """Proves unknown columns are reported with the closest known one."""
    expr = parse_expression("statsu = 'x' AND processd IS NOT TRUE AND id > 0 AND zzz")
    problems = check_columns(expr, ["id", "status", "processed"])
    assert problems == [
        'unknown column "processd"; did you mean "processed"?',
        'unknown column "statsu"; did you mean "status"?',
        'unknown column "zzz"',
    ]
    assert check_columns(expr, ["id", "statsu", "processd", "zzz"]) == []


def test_check_columns_points_at_case() -> None:
    """Proves an unquoted name meeting a mixed-case column gets that column suggested."""
    expr = parse_expression("Status = 'x'")  # folds to status
    assert check_columns(expr, ["Status"]) == ['unknown column "status"; did you mean "Status"?']


def test_compile_without_alias_quotes_columns() -> None:
    """Proves compiled SQL quotes every column and keeps the rest of the expression."""
    expr = parse_expression("status = 'pending' AND \"Mixed\" > 1 AND lower(name) = 'x'")
    assert compile_expression(expr) == (
        '"status" = \'pending\' AND "Mixed" > 1 AND lower("name") = \'x\''
    )


@pytest.mark.parametrize(
    ("text", "compiled"),
    [
        ("deleted_at IS NULL", '"r"."deleted_at" IS NULL'),
        ("payload->>'kind' = 'x'", "\"r\".\"payload\" ->> 'kind' = 'x'"),
        ("tags[1] = 'x'", '"r"."tags"[1] = \'x\''),
        ("(comp).f = 1", '("r"."comp").f = 1'),
        ('"order" > id', '"r"."order" > "r"."id"'),
        ("coalesce(a, b) = ANY(ARRAY[c])", 'COALESCE("r"."a", "r"."b") = ANY(ARRAY["r"."c"])'),
        ("CASE WHEN x THEN y END", 'CASE WHEN "r"."x" THEN "r"."y" END'),
    ],
)
def test_compile_with_alias_qualifies_every_column(text: str, compiled: str) -> None:
    """Proves an alias qualifies each column reference, wherever it sits in the tree."""
    assert compile_expression(parse_expression(text), alias="r") == compiled


def test_compile_alias_is_quoted() -> None:
    """Proves an odd alias is quoted by quote_ident, never spliced raw."""
    expr = parse_expression("a = 1")
    assert compile_expression(expr, alias='we"ird') == '"we""ird"."a" = 1'


def test_compile_is_repeatable() -> None:
    """Proves compiling does not mutate the expression (two compiles give the same SQL)."""
    expr = parse_expression("a = 1 AND b")
    first = compile_expression(expr, alias="x")
    assert compile_expression(expr, alias="x") == first
    assert compile_expression(expr) == '"a" = 1 AND "b"'


def test_expression_is_frozen() -> None:
    """Proves an Expression cannot be changed after checking."""
    expr = parse_expression("a")
    with pytest.raises(AttributeError):
        expr.sql = "true"  # type: ignore[misc]
    assert isinstance(expr, Expression)


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    """Proves pathological nesting yields a problem rather than a RecursionError."""
    problems = check_expression("1 + " * 2400 + "1 = a")
    assert problems == ["expression is nested too deeply"] or problems == []


# Fragments that make random text look like SQL, so that hypothesis reaches the parser.
_SQL_BITS = st.sampled_from(
    [
        "a",
        "b",
        "t.x",
        "'s'",
        "'",
        '"',
        "1",
        "$1",
        "(",
        ")",
        ";",
        "--",
        "/*",
        "*/",
        "=",
        "<",
        "AND",
        "OR",
        "NOT",
        "IS",
        "NULL",
        "SELECT",
        "FROM",
        "WHERE",
        "UNION",
        "lower(",
        "now()",
        "pg_sleep(",
        ",",
        "::int",
        "->>",
        "[",
        "]",
        "ARRAY",
        "IN",
        "EXISTS",
        "*",
        "$$",
        "\\",
        "CASE",
        "WHEN",
        "THEN",
        "END",
        "count(*)",
        "OVER",
        "()",
        "e'",
        "U&",
        "\n",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=120), st.lists(_SQL_BITS, max_size=25).map(" ".join)))
def test_check_expression_never_raises(text: str) -> None:
    """Proves any input gets a list of problems back, never an exception."""
    problems = check_expression(text)
    assert isinstance(problems, list)
    assert all(isinstance(p, str) and p for p in problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SQL_BITS, min_size=1, max_size=25).map(" ".join))
def test_accepted_text_compiles_to_one_where_clause(text: str) -> None:
    """Proves whatever is accepted compiles to text that stays inside one WHERE clause."""
    if check_expression(text, boolean=False):
        return
    compiled = compile_expression(parse_expression(text, boolean=False), alias="r")
    statements = parse_sql(f"SELECT 1 FROM t AS r WHERE ({compiled}) AND r.id = $1")
    assert len(statements) == 1
    select = statements[0].stmt
    assert isinstance(select, ast.SelectStmt)
    assert select.limitCount is None and select.groupClause is None and select.op.value == 0
