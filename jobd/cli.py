"""The `jobd` command line: parse arguments, call into the packages, map errors to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage. No traceback ever
reaches the user: every `JobdError` becomes its message, anything else a one-line report.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobd import __version__
from jobd.errors import ConfigError, JobdError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share one exit path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def default_config_path() -> Path:
    """`-c` default: `$JOBD_CONFIG`, then `./jobd.yaml`."""
    return Path(os.environ.get("JOBD_CONFIG") or "jobd.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jobd", description="A standalone job daemon for Postgres.")
    parser.add_argument("--version", action="version", version=f"jobd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c",
            "--config",
            type=Path,
            default=None,
            help="configuration file (default: $JOBD_CONFIG, then ./jobd.yaml)",
        )
        return p

    check = with_config(sub.add_parser("check", help="validate the configuration file"))
    check.add_argument(
        "--db",
        action="store_true",
        help="also check tables, primary keys and columns against the database",
    )
    sub.add_parser("schema", help="print the configuration's JSON Schema")
    with_config(sub.add_parser("run", help="run the daemon"))
    with_config(
        sub.add_parser(
            "demo",
            help="run the daemon on config.example.yaml with seeded tables and a local sink",
        )
    )
    from jobd import commands

    COMMANDS.update(commands.register(sub))
    return parser


def cmd_check(args: argparse.Namespace) -> int:
    from jobd.config import load_config

    path: Path = args.config or default_config_path()
    spec = load_config(path)
    if args.db:
        import asyncio

        asyncio.run(_check_database(spec))
    print(f"{path}: OK: {spec.summary()}{' (tables checked)' if args.db else ''}")
    return EXIT_OK


async def _check_database(spec: Any) -> None:
    """Every table, key and column the configuration names exists (TableCheckError: exit 2)."""
    from jobd.commands.common import database
    from jobd.triggers.tables import resolve_resources

    async with database(spec) as db, db.pool.acquire() as conn:
        await resolve_resources(conn, spec)


def cmd_schema(args: argparse.Namespace) -> int:
    from jobd.config.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _start_daemon(args: argparse.Namespace, *, demo: bool) -> int:
    from jobd.config import load_config
    from jobd.daemon import Daemon, run_daemon
    from jobd.logging import configure

    default = Path("config.example.yaml") if demo else default_config_path()
    path: Path = args.config or default
    if demo and not path.exists():
        raise UsageError(
            f"demo: {path} not found; run it in a checkout of jobd (where "
            "config.example.yaml is) or give the example with -c FILE"
        )
    spec = load_config(path)  # invalid: exit 2 with every problem, before anything starts
    configure(spec.log.level, spec.log.format, metrics=True)
    # Python entrypoints are looked up like `python -m` does: from the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if demo:
        from jobd.demo.run import DemoDaemon

        return run_daemon(DemoDaemon(path, spec))
    return run_daemon(Daemon(path, spec))


def cmd_run(args: argparse.Namespace) -> int:
    return _start_daemon(args, demo=False)


def cmd_demo(args: argparse.Namespace) -> int:
    return _start_daemon(args, demo=True)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": cmd_check,
    "schema": cmd_schema,
    "run": cmd_run,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return exc.exit_code
    except JobdError as exc:
        print(f"jobd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still no traceback for the user, but say what to do
        print(
            f"jobd: internal error: {type(exc).__name__}: {exc} "
            "(please report this; run with JOBD_TRACEBACK=1 for details)",
            file=sys.stderr,
        )
        if os.environ.get("JOBD_TRACEBACK"):
            raise
        return EXIT_FAILURE
