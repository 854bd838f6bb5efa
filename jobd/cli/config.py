"""`jobd check [--db]` and `jobd schema`: the configuration and its JSON Schema."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobd.cli.common import Command, add_config, config_path, database
from jobd.errors import ConfigError
from jobd.model import Spec

if TYPE_CHECKING:
    from jobd.triggers.check import Report


def register(sub: Any) -> dict[str, Command]:
    check = add_config(sub.add_parser("check", help="validate the configuration file"))
    check.add_argument(
        "--db",
        action="store_true",
        help="also check it against the database: tables and columns, the statements "
        "triggers will run (prepared, never run), value types, python entrypoints",
    )
    sub.add_parser("schema", help="print the configuration's JSON Schema")
    return {"check": cmd_check, "schema": cmd_schema}


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the file; with --db, also against the database. Every finding is printed
    at its file:line:column (exit 2); the same rules as `jobd run`, which refuses to start
    on any of them."""
    from jobd.config import load_located
    from jobd.triggers.check import resting_warnings

    path: Path = config_path(args)
    spec, locate = load_located(path)
    notes: list[str] = []
    if args.db:
        # Python entrypoints are looked up like `python -m` does: from the working directory.
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        report = asyncio.run(_check_database(spec))
        if report.findings:
            raise ConfigError(locate((f.path, f.at_key, f.message) for f in report.findings))
        notes = report.notes
    print(f"{path}: OK: {spec.summary()}{' (database checked)' if args.db else ''}")
    for note in notes:
        print(f"{path}: note: {note}")
    for warning in locate((w.path, w.at_key, w.message) for w in resting_warnings(spec)):
        print(warning, file=sys.stderr)
    return 0


async def _check_database(spec: Spec) -> Report:
    """Everything `jobd.triggers.check` looks at, on one connection of the configuration's
    database."""
    from jobd.triggers.check import check_database

    async with database(spec) as db, db.pool.acquire() as conn:
        return await check_database(conn, spec)


def cmd_schema(args: argparse.Namespace) -> int:
    from jobd.config.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
