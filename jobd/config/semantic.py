"""Checks the schema cannot express, run on the built model of the parts the schema passed.

Every problem is collected (never only the first), with the key path it belongs to; the
caller turns paths into file positions. Cross-reference messages suggest the closest name.
"""

from __future__ import annotations

import difflib
import json
import zoneinfo
from collections.abc import Collection
from functools import cache
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from jobd.config.cron import check_cron
from jobd.config.placeholders import check_template, strings
from jobd.config.yamlload import KeyPath
from jobd.model import ActorPersister, SortKey, TenantSource
from jobd.sql.dsn import SCHEMES, redact, url_problem
from jobd.sql.ident import is_identifier
from jobd.where import check_expression

Finding = tuple[KeyPath, bool, str]  # (path, locate at the key, message)


class Findings:
    """Collects findings; small helpers keep each check to a line or two."""

    def __init__(self) -> None:
        self.items: list[Finding] = []

    def add(self, path: KeyPath, message: str, *, at_key: bool = False) -> None:
        self.items.append((path, at_key, message))

    def reference(
        self, path: KeyPath, kind: str, name: str | None, known: Collection[str], where: str
    ) -> None:
        """`name` must be one of `known` (an action, read or queue defined in `where`)."""
        if name is None or name in known:
            return
        message = f"{kind} '{name}' is not defined in {where}"
        close = difflib.get_close_matches(name, list(known), n=1)
        if close:
            message += f" (did you mean '{close[0]}'?)"
        elif known:
            message += f" (defined: {', '.join(sorted(known))})"
        else:
            message += " (none are defined)"
        self.add(path, message)

    def expression(self, path: KeyPath, text: str | None, *, boolean: bool = True) -> None:
        if text is not None:
            for message in check_expression(text, boolean=boolean):
                self.add(path, message)

    def identifier(self, path: KeyPath, name: str, what: str) -> None:
        if not is_identifier(name):
            self.add(
                path,
                f"{what} '{name}' is not a valid identifier "
                "(a letter or '_', then letters, digits, '_' or '$', at most 63 bytes)",
            )

    def cron(self, path: KeyPath, expression: str | None) -> None:
        problem = None if expression is None else check_cron(expression)
        if problem:
            self.add(path, problem)

    def timezone(self, path: KeyPath, name: str) -> None:
        if not timezone_exists(name):
            message = f"unknown time zone '{name}'"
            close = difflib.get_close_matches(name, sorted(_zones()), n=1)
            self.add(path, message + (f" (did you mean '{close[0]}'?)" if close else ""))

    def sort(self, path: KeyPath, keys: tuple[SortKey, ...] | None) -> None:
        for index, key in enumerate(keys or ()):
            self.identifier((*path, index), key.column, "sort column")


def timezone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class _Reads(Visitor):
    """Collects a query's parameters, and whatever in it does more than read: a
    data-modifying statement (in a WITH clause or anywhere else) or a row lock."""

    def __init__(self) -> None:
        self.numbers: set[int] = set()
        self.writes: list[str] = []

    def visit_ParamRef(self, ancestors: Any, node: ast.ParamRef) -> None:
        if node.number is not None:
            self.numbers.add(node.number)

    def visit_InsertStmt(self, ancestors: Any, node: ast.InsertStmt) -> None:
        self.writes.append("an INSERT")

    def visit_UpdateStmt(self, ancestors: Any, node: ast.UpdateStmt) -> None:
        self.writes.append("an UPDATE")

    def visit_DeleteStmt(self, ancestors: Any, node: ast.DeleteStmt) -> None:
        self.writes.append("a DELETE")

    def visit_MergeStmt(self, ancestors: Any, node: ast.MergeStmt) -> None:
        self.writes.append("a MERGE")

    def visit_LockingClause(self, ancestors: Any, node: ast.LockingClause) -> None:
        self.writes.append("FOR UPDATE/FOR SHARE, which locks the rows it reads")


def select_problem(sql: str) -> tuple[str | None, set[int]]:
    """(problem, parameter numbers) for a query that must be one SELECT statement that
    only reads: jobd runs it again and again (each scheduler run, each job), so a write
    hidden in it would repeat as often. The database enforces the same at run time: these
    queries run in READ ONLY transactions."""
    try:
        statements = parse_sql(sql)
    except ParseError as exc:
        return f"SQL syntax error: {exc.args[0] if exc.args else exc}", set()
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return "must be exactly one SELECT statement", set()
    select = statements[0].stmt
    if select.intoClause is not None:
        return "must only read, but SELECT ... INTO creates a table: remove INTO", set()
    reads = _Reads()
    reads(select)
    if reads.writes:
        return f"must only read, but it contains {reads.writes[0]}: write a plain SELECT", set()
    return None, reads.numbers


def check_database_url(found: Findings, url: Any) -> None:
    """A URL asyncpg would refuse only when connecting (its scheme is the schema's)."""
    if isinstance(url, str) and url.startswith(SCHEMES):
        problem = url_problem(url)
        if problem:
            found.add(("database", "url"), f"{json.dumps(redact(url))}: {problem}")


def check_tenants(found: Findings, path: KeyPath, source: TenantSource | None) -> None:
    if source is None:
        return
    if source.kind == "list":
        for index, name in enumerate(source.names):
            found.identifier((*path, index), name, "tenant name")
    elif source.kind == "sql" and source.sql is not None:
        problem, params = select_problem(source.sql)
        if problem is None and params:
            problem = "takes no parameters ($n)"
        if problem:
            found.add((*path, "sql"), problem)


def check_persister(found: Findings, path: KeyPath, persister: ActorPersister | None) -> None:
    if persister is None:
        return
    if persister.python is not None and (persister.store or persister.lookup_sql):
        found.add((*path, "python"), "python cannot be combined with store or lookup")
    if persister.lookup_sql is None:
        return
    problem, params = select_problem(persister.lookup_sql)
    expected = set(range(1, len(persister.lookup_args) + 1))
    if problem is None and params != expected:
        used = ", ".join(f"${n}" for n in sorted(params)) or "no parameters"
        problem = f"uses {used} but lookup.args binds {len(persister.lookup_args)}"
    if problem:
        found.add((*path, "lookup", "sql"), problem)
    for index, field in enumerate(persister.lookup_args):
        if persister.store is not None and field not in persister.store:
            found.add(
                (*path, "lookup", "args", index),
                f"'{field}' is not kept by store ({', '.join(persister.store)})",
            )


def check_templates(found: Findings, path: KeyPath, value: Any) -> None:
    """Placeholders in URL/header/body templates name something an action can fill."""
    for key, text in strings(value):
        for problem in check_template(text):
            found.add((*path, *key), problem)
