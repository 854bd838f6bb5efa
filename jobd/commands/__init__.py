"""The operator subcommands of `jobd`: migrate, explain, trigger, schedule, jobs, queues,
status. `jobd/cli.py` calls `register(subparsers)` and dispatches to the functions it
returns; each is `cmd(args) -> exit code` and runs its own event loop.

Every command finds the database through the configuration file (`-c`, default
`$JOBD_CONFIG`, then `./jobd.yaml`): `database.url` and `database.schema`; with no url,
the embedded development Postgres in `./.jobd/` is started, as `jobd run` does.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from jobd.commands import jobs, triggers

Command = Callable[[argparse.Namespace], int]


def register(subparsers: argparse._SubParsersAction) -> dict[str, Command]:  # type: ignore[type-arg]
    """Add the subcommands; returns command name -> function."""
    commands: dict[str, Command] = {}
    commands.update(triggers.register(subparsers))
    commands.update(jobs.register(subparsers))
    return commands


__all__ = ["Command", "register"]
