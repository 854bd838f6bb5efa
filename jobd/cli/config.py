"""`jobd check [--db]` and `jobd schema`: the configuration and its JSON Schema."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from jobd.cli.common import Command, add_config, config_path, database
from jobd.model import Spec


def register(sub: Any) -> dict[str, Command]:
    check = add_config(sub.add_parser("check", help="validate the configuration file"))
    check.add_argument(
        "--db",
        action="store_true",
        help="also check tables, primary keys and columns against the database",
    )
    sub.add_parser("schema", help="print the configuration's JSON Schema")
    return {"check": cmd_check, "schema": cmd_schema}


def cmd_check(args: argparse.Namespace) -> int:
    from jobd.config import load_config

    path: Path = config_path(args)
    spec = load_config(path)
    if args.db:
        asyncio.run(_check_database(spec))
    print(f"{path}: OK: {spec.summary()}{' (tables checked)' if args.db else ''}")
    return 0


async def _check_database(spec: Spec) -> None:
    """Every table, key and column the configuration names exists (TableCheckError: exit 2)."""
    from jobd.triggers.tables import resolve_resources

    async with database(spec) as db, db.pool.acquire() as conn:
        await resolve_resources(conn, spec)


def cmd_schema(args: argparse.Namespace) -> int:
    from jobd.config.schema import schema_text

    sys.stdout.write(schema_text())
    return 0
