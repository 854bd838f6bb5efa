"""`jobd check --db`'s table of hostile configurations, each checked by the real CLI
against a real database: every mistake only the database (or the Python path) can reveal
exits 2 with FILE:LINE:COLUMN: KEY.PATH: and a message saying what is wrong; nothing runs
(tables are unchanged), and no traceback or password is printed. The example
configuration passes against the demo's tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.support import ROOT, SETUP_SQL, assert_no_leak, execute, jobd, with_password

HEADER = """\
version: 1
database: {url: "URL"}
"""

ORDERS = """\
resources:
  orders:
    table: public.orders
    actions:
      work: {python: "tests.integration.triggers.actions:record"}
"""

NOTES = """\
resources:
  notes:
    table: notes
    multitenancy: {strategy: schema}
"""

WRITES = """
CREATE FUNCTION public.write_tenant() RETURNS text LANGUAGE sql AS
$$ INSERT INTO public.users VALUES (99, 'x') RETURNING 'acme' $$;
"""


@dataclass(frozen=True)
class Case:
    name: str
    body: str  # the configuration after HEADER
    at: str  # the text the finding points at (its first occurrence after HEADER)
    path: str
    needle: str
    header: str = HEADER


def trigger(line: str, actions: str = "") -> str:
    """ORDERS with extra actions and one trigger `process` with `line` in it."""
    return ORDERS + actions + f"    triggers:\n      process:\n        action: work\n{line}\n"


def http(url: str, extra: str = "") -> str:
    return f'      call:\n        http:\n          url: "{url}"\n{extra}'


T = "resources.orders.triggers.process"
A = "resources.orders.actions"
CASES = [
    Case(
        "non-boolean where",
        trigger('        where: "note"'),
        '"note"',
        f"{T}.where",
        "must be type boolean",
    ),
    Case(
        "where type mismatch",
        trigger("        where: \"total_cents > '1O00'\""),
        '"total_cents',
        f"{T}.where",
        'invalid input syntax for type integer: "1O00"',
    ),
    Case(
        "where text = int",
        trigger('        where: "status = 1"'),
        '"status',
        f"{T}.where",
        "operator does not exist: text = integer",
    ),
    Case(
        "where int > timestamp",
        trigger('        where: "total_cents > now()"'),
        '"total_cents',
        f"{T}.where",
        "operator does not exist",
    ),
    Case(
        "read where mismatch",
        ORDERS + '    reads:\n      r: {where: "processed = 3"}\n',
        '"processed',
        "resources.orders.reads.r.where",
        "operator does not exist: boolean = integer",
    ),
    Case(
        "url placeholder column",
        trigger("        on_success: call", http("http://h/{record.stauts}")),
        '"http://h',
        f"{A}.call.http.url",
        'unknown column "stauts"',
    ),
    Case(
        "header placeholder column",
        trigger(
            "        on_success: call",
            http("http://h/", '          headers: {X-Ref: "{record.nope}"}\n'),
        ),
        '"{record.nope}"',
        f"{A}.call.http.headers.X-Ref",
        'unknown column "nope"',
    ),
    Case(
        "body placeholder column",
        trigger(
            "        on_success: call",
            http("http://h/", '          body: {ref: "{record.nope}"}\n'),
        ),
        '"{record.nope}"',
        f"{A}.call.http.body.ref",
        'unknown column "nope"',
    ),
    Case(
        "primary key placeholder",
        trigger("        on_success: call", http("http://h/{primary_key.ref}")),
        '"http://h',
        f"{A}.call.http.url",
        "not a primary key column",
    ),
    Case(
        "column outside worker_read",
        ORDERS
        + http("http://h/{record.note}")
        + "    reads:\n      slim: {columns: [status]}\n"
        + "    triggers:\n      process: {action: call, worker_read: slim}\n",
        '"http://h',
        f"{A}.call.http.url",
        "worker_read",
    ),
    Case(
        "python does not import",
        ORDERS.replace("tests.integration.triggers.actions:record", "nosuch_module_xyz:run"),
        '"nosuch',
        f"{A}.work.python",
        "cannot import",
    ),
    Case(
        "python no such attribute",
        ORDERS.replace("tests.integration.triggers.actions:record", "json:nosuch_attr"),
        '"json',
        f"{A}.work.python",
        "no attribute",
    ),
    Case(
        "python not callable",
        ORDERS.replace("tests.integration.triggers.actions:record", "json:__doc__"),
        '"json',
        f"{A}.work.python",
        "not callable",
    ),
    Case(
        "update boolean",
        trigger(
            "        on_success: mark", "      mark: {update: {set: {processed: yes-please}}}\n"
        ),
        "yes-please",
        f"{A}.mark.update.set.processed",
        "boolean",
    ),
    Case(
        "update integer",
        trigger("        on_success: mark", "      mark: {update: {set: {total_cents: abc}}}\n"),
        "abc}",
        f"{A}.mark.update.set.total_cents",
        "integer",
    ),
    Case(
        "update sql type",
        trigger(
            "        on_success: mark",
            '      mark: {update: {set: {total_cents: {sql: "note"}}}}\n',
        ),
        '{sql: "note"}',
        f"{A}.mark.update.set.total_cents",
        "is of type integer but expression is of type text",
    ),
    Case(
        "update sql operator",
        trigger(
            "        on_success: mark",
            '      mark: {update: {set: {note: {sql: "processed + 1"}}}}\n',
        ),
        '"processed + 1"',
        f"{A}.mark.update.set.note.sql",
        "operator does not exist: boolean + integer",
    ),
    Case(
        "update error kind into int",
        trigger(
            "        on_error: mark",
            "      mark: {update: {set: {total_cents: {error: message}}}}\n",
        ),
        "{error: message}",
        f"{A}.mark.update.set.total_cents",
        "integer",
    ),
    Case(
        "tenants delete CTE",
        NOTES
        + "    list_tenants:\n"
        + "      sql: \"WITH d AS (DELETE FROM public.users RETURNING id) SELECT 'acme'\"\n",
        '"WITH',
        "resources.notes.list_tenants.sql",
        "only read",
    ),
    Case(
        "tenants select into",
        NOTES + "    list_tenants: {sql: \"SELECT 'acme' INTO stolen\"}\n",
        "\"SELECT 'acme'",
        "resources.notes.list_tenants.sql",
        "INTO",
    ),
    Case(
        "tenants unknown column",
        NOTES + '    list_tenants: {sql: "SELECT nosuch FROM public.users"}\n',
        '"SELECT nosuch',
        "resources.notes.list_tenants.sql",
        'column "nosuch" does not exist',
    ),
    Case(
        "tenants writing function",
        NOTES + '    list_tenants: {sql: "SELECT public.write_tenant()"}\n',
        '"SELECT public',
        "resources.notes.list_tenants.sql",
        "read-only transaction",
    ),
    Case(
        "tenants python import",
        NOTES + '    list_tenants: {python: "nosuch_module_xyz:tenants"}\n',
        '"nosuch',
        "resources.notes.list_tenants.python",
        "cannot import",
    ),
    Case(
        "lookup for update",
        "actor_persister:\n  lookup:\n    args: [id]\n"
        '    sql: "SELECT id FROM public.users WHERE id = $1 FOR UPDATE"\n' + ORDERS,
        '"SELECT id',
        "actor_persister.lookup.sql",
        "FOR UPDATE",
    ),
    Case(
        "lookup unknown table",
        "actor_persister:\n  lookup:\n    args: [id]\n"
        '    sql: "SELECT id FROM public.userz WHERE id = $1"\n' + ORDERS,
        '"SELECT id',
        "actor_persister.lookup.sql",
        'relation "public.userz" does not exist',
    ),
    Case(
        "lookup type mismatch",
        "actor_persister:\n  lookup:\n    args: [email]\n"
        "    sql: \"SELECT id FROM public.users WHERE email = $1 AND id = 'x'\"\n" + ORDERS,
        '"SELECT id',
        "actor_persister.lookup.sql",
        "invalid input syntax for type integer",
    ),
    Case(
        "persister python import",
        'actor_persister: {python: "nosuch_module_xyz:P"}\n' + ORDERS,
        '"nosuch',
        "actor_persister.python",
        "cannot import",
    ),
    Case(
        "url with driver scheme",
        ORDERS,
        '"postgresql+asyncpg',
        "database.url",
        "postgres://",
        header='version: 1\ndatabase: {url: "postgresql+asyncpg://app:PW-SECRET-1@db/app"}\n',
    ),
    Case(
        "url key=value",
        ORDERS,
        '"password=',
        "database.url",
        "postgres://",
        header='version: 1\ndatabase: {url: "password=PW-SECRET-2 host=127.0.0.1"}\n',
    ),
    Case(
        "url bad port",
        ORDERS,
        '"postgresql://',
        "database.url",
        "port",
        header='version: 1\ndatabase: {url: "postgresql://app:PW-SECRET-3@db:notaport/app"}\n',
    ),
    Case(
        "url bad IPv6",
        ORDERS,
        '"postgresql://',
        "database.url",
        "IPv6",
        header='version: 1\ndatabase: {url: "postgresql://app:PW-SECRET-4@[::1/app"}\n',
    ),
    Case(
        "url bad sslmode",
        ORDERS,
        '"postgresql://',
        "database.url",
        "sslmode",
        header='version: 1\ndatabase: {url: "postgresql://app:PW-SECRET-5@db/app?sslmode=bogus"}\n',
    ),
    Case(
        "open listen without token",
        ORDERS,
        '"0.0.0.0',
        "admin.listen",
        "admin.token",
        header=HEADER + 'admin: {listen: "0.0.0.0:8370"}\n',
    ),
    Case(
        "schedule uses record",
        ORDERS
        + http("http://h/{record.id}")
        + '    scheduled_actions:\n      nightly: {action: call, cron: "@daily"}\n',
        "call, cron",
        "resources.orders.scheduled_actions.nightly.action",
        "{record.id}",
    ),
]


@pytest.fixture
def database(database_url: str) -> str:
    """The test database with the hostile tables and a function that writes."""
    execute(database_url, SETUP_SQL + WRITES)
    return database_url


def position(text: str, needle: str, after: int) -> tuple[int, int]:
    index = text.index(needle, after)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def test_hostile_check_db_configs(database: str, tmp_path: Path) -> None:
    """Each configuration of the table exits 2 and reports its finding at the line and
    column of the key it belongs to, with the expected words; no traceback, password or
    internal error is printed, and nothing the check ran changed a table."""
    failures = []
    for index, case in enumerate(CASES):
        header = case.header.replace("URL", with_password(database))
        text = header + case.body
        path = tmp_path / f"case{index}.yaml"
        path.write_text(text)
        result = jobd("check", "--db", "-c", str(path))
        try:
            line, column = position(text, case.at, len(header) if case.header == HEADER else 0)
            expected = f"{path}:{line}:{column}: {case.path}: "
            found = [x for x in result.stderr.splitlines() if x.startswith(expected)]
            assert result.returncode == 2, (result.returncode, result.stderr[-500:])
            assert found and case.needle in found[0], (expected, case.needle, result.stderr)
            assert_no_leak(result.stdout + result.stderr, case.name)
        except AssertionError as exc:
            failures.append(f"{case.name}: {exc}"[:600])

    assert execute(database, "SELECT count(*) FROM public.users") == 1  # nothing ran
    assert not failures, f"{len(failures)} of {len(CASES)} failed:\n" + "\n".join(failures)
    assert len(CASES) >= 20


def test_example_passes_check_db(database_url: str, tmp_path: Path) -> None:
    """config.example.yaml passes `check --db` against the demo's tables (its seed)."""
    execute(database_url, (ROOT / "jobd" / "demo" / "seed.sql").read_text())
    example = (ROOT / "config.example.yaml").read_text()
    config = tmp_path / "example.yaml"
    url = with_password(database_url)
    config.write_text(example.replace("${DATABASE_URL:-}", url))
    result = jobd("check", "--db", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "(database checked)" in result.stdout
    assert_no_leak(result.stdout + result.stderr, "example")


def test_without_jobd_tables_the_check_passes_with_a_note(database: str, tmp_path: Path) -> None:
    """With jobd's schema not installed (here: database.schema names another one), the
    statements that insert into it are not prepared: exit 0, and a note says why and what
    installs them; the expressions are still checked."""
    config = tmp_path / "jobd.yaml"
    body = trigger("        where: \"status = 'new'\"")
    text = HEADER.replace("URL", with_password(database)).replace(
        '"}\n', '", schema: not_installed}\n'
    )
    config.write_text(text + body)
    result = jobd("check", "--db", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "(database checked)" in result.stdout
    assert "note: jobd's tables are not installed" in result.stdout
    assert "jobd migrate" in result.stdout
    config.write_text(text + body.replace("status = 'new'", "status = 1"))
    wrong = jobd("check", "--db", "-c", str(config))
    assert wrong.returncode == 2 and "operator does not exist" in wrong.stderr
