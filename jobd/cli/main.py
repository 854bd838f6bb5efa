"""The `jobd` command line: parse arguments, dispatch to the command groups (one module
each: config, run, database, enqueue, jobs), map errors to exit codes.

Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage; 141 (128 +
SIGPIPE, as a Unix tool killed by it) when the reader of the output went away, as in
`jobd jobs list | head`: the command stops quietly. No traceback ever reaches the user:
every `JobdError` becomes its message, a value the database cannot take (SQLSTATE class
22) a usage error, anything else a one-line report.

`-c/--config FILE` may come before the command (`jobd -c f status`) or after it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import asyncpg

from jobd import __version__
from jobd.cli import config, database, drain, enqueue, health, jobs, run
from jobd.cli.common import Command, add_config, check_arguments
from jobd.errors import ConfigError, JobdError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PIPE = 0, 1, 2, 141


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so usage errors share one exit path."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jobd", description="A standalone job daemon for Postgres.")
    parser.add_argument("--version", action="version", version=f"jobd {__version__}")
    add_config(parser, before_command=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for group in (config, run, database, enqueue, jobs, health, drain):
        COMMANDS.update(group.register(sub))
    completion = sub.add_parser(
        "completion", help="print a shell completion script (docs/cli.md says where it goes)"
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    COMMANDS["completion"] = lambda args: _print_completion(parser, args.shell)
    _complete_files(parser)
    return parser


COMMANDS: dict[str, Command] = {}
SHELLS = ("bash", "zsh", "tcsh")


def _print_completion(parser: argparse.ArgumentParser, shell: str) -> int:
    """The completion script, generated from this very parser (shtab): every command,
    option and choice, and file names where a file is expected."""
    import shtab

    sys.stdout.write(shtab.complete(parser, shell=shell))
    return EXIT_OK


def _complete_files(parser: argparse.ArgumentParser) -> None:
    """-c/--config completes file names, in every command that takes it."""
    import shtab

    for action in parser._actions:
        if "--config" in action.option_strings:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _complete_files(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        check_arguments(args)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return exc.exit_code
    except JobdError as exc:
        # The SQL functions' messages start with "jobd: " already (said once, not twice).
        print(f"jobd: {str(exc).removeprefix('jobd: ')}", file=sys.stderr)
        return exc.exit_code
    except asyncpg.DataError as exc:  # a value the database could not take: the input's fault
        text = str(getattr(exc, "message", None) or exc)
        print(f"jobd: {text[:300]} (check the values given)", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_PIPE
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


def _discard_stdout() -> None:
    """The reader closed the pipe: what is still buffered goes nowhere, so that Python's
    own flush at exit does not fail again (and print a second error)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
