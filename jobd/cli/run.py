"""`jobd run` and `jobd demo`: the daemon, on a configuration or on the example."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
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

    path = demo_config(args) if demo else config_path(args)
    spec = load_config(path)  # invalid: exit 2 with every problem, before anything starts
    configure(spec.log.level, spec.log.format)
    # Python entrypoints are looked up like `python -m` does: from the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if demo:
        from jobd.demo.run import DemoDaemon

        return run_daemon(DemoDaemon(path, spec))
    return run_daemon(Daemon(path, spec))


def demo_config(args: argparse.Namespace) -> Path:
    """`-c FILE`, else ./config.example.yaml (a checkout), else the copy installed with the
    package (a wheel ships the example beside the demo's code)."""
    if args.config is not None:
        if not args.config.exists():
            raise UsageError(f"demo: {args.config} not found")
        return Path(args.config)
    local = Path("config.example.yaml")
    if local.exists():
        return local
    packaged = resources.files("jobd.demo").joinpath("config.example.yaml")
    if packaged.is_file():
        return Path(str(packaged))
    raise UsageError(
        "demo: config.example.yaml not found; run it in a checkout of jobd or give the "
        "example with -c FILE"
    )


def cmd_run(args: argparse.Namespace) -> int:
    return _start_daemon(args, demo=False)


def cmd_demo(args: argparse.Namespace) -> int:
    return _start_daemon(args, demo=True)
