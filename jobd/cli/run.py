"""`jobd run` and `jobd demo`: the daemon, on a configuration or on the example."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from jobd.cli.common import Command, add_config, config_path
from jobd.errors import UsageError


def register(sub: Any) -> dict[str, Command]:
    add_config(sub.add_parser("run", help="run the daemon"))
    add_config(
        sub.add_parser(
            "demo",
            help="run the daemon on config.example.yaml with seeded tables and a local sink",
        )
    )
    return {"run": cmd_run, "demo": cmd_demo}


def _start_daemon(args: argparse.Namespace, *, demo: bool) -> int:
    from jobd.config import load_config
    from jobd.daemon.supervisor import Daemon, run_daemon
    from jobd.logging import configure

    path = args.config or Path("config.example.yaml") if demo else config_path(args)
    if demo and not path.exists():
        raise UsageError(
            f"demo: {path} not found; run it in a checkout of jobd (where "
            "config.example.yaml is) or give the example with -c FILE"
        )
    spec = load_config(path)  # invalid: exit 2 with every problem, before anything starts
    configure(spec.log.level, spec.log.format)
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
