"""What the hostile-input tables share: the database they run against, the configuration
that names it (with a password in its URL that must never be shown), the real CLI as a
process, and the assertion that nothing secret or internal leaked."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).parents[2]
TOKEN = "tok-SECRET-5f1c9a"
PASSWORD = "pw-SECRET-77d2e1"
# What no answer, message or log line may ever contain.
LEAKS = ("Traceback", "internal error", "please report", TOKEN, PASSWORD, "SECRET")

SETUP_SQL = """
CREATE TABLE public.orders (id int PRIMARY KEY, status text NOT NULL DEFAULT 'new',
                            total_cents int, processed boolean, note text);
INSERT INTO public.orders (id) VALUES (1), (2);
CREATE TABLE public.users (id int PRIMARY KEY, email text);
INSERT INTO public.users VALUES (7, 'a@example.com');
CREATE SCHEMA acme;
CREATE TABLE acme.notes (id int PRIMARY KEY, body text);
INSERT INTO acme.notes VALUES (1, 'x');
"""

CONFIG = """\
version: 1
database: {{url: "{url}", pool_size: 20}}
log: {{format: json}}
admin: {{listen: "127.0.0.1:8399", token: "{token}"}}
queues: {{default: 5, mail: 2}}
resources:
  orders:
    table: public.orders
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
    triggers:
      process: {{action: work, scheduler_cron: false, queue: default}}
      gone: {{action: work, scheduler_cron: false, queue: default, state: deleted}}
    scheduled_actions:
      nightly: {{action: work, cron: "@daily", queue: mail}}
  notes:
    table: notes
    multitenancy: {{strategy: schema}}
    list_tenants: [acme]
    actions:
      work: {{python: "tests.integration.triggers.actions:record"}}
    triggers:
      process: {{action: work, scheduler_cron: false, queue: default}}
"""


def with_password(url: str, password: str = PASSWORD) -> str:
    """`url` with a password in it (user `postgres` when it names none)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def config_text(database_url: str) -> str:
    return CONFIG.format(url=with_password(database_url), token=TOKEN)


def jobd(
    *args: str | bytes, cwd: Path = ROOT, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real CLI, `python -m jobd ARGS`, with no JOBD_* variables of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBD_")}
    env.pop("DATABASE_URL", None)
    env["PYTHONPATH"] = str(ROOT)  # the test entrypoints (tests.integration...) import
    return subprocess.run(
        [sys.executable, "-m", "jobd", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout_s,
        cwd=cwd,
        env=env,
        check=False,
    )


def assert_no_leak(text: str, what: object) -> None:
    """No traceback, internal-error report, token or password in `text`."""
    for leak in LEAKS:
        assert leak not in text, (what, leak, text[:500])


def execute(database_url: str, sql: str) -> object:
    """Run `sql` (statements, or one query whose first value is returned) on the database."""

    async def go() -> object:
        conn = await asyncpg.connect(database_url)
        try:
            return (
                await conn.fetchval(sql)
                if sql.lstrip().upper().startswith("SELECT")
                else await conn.execute(sql)
            )
        finally:
            await conn.close()

    return asyncio.run(go())
