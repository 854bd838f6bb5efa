"""`jobd health [--ready]`: ask the daemon of a configuration whether it is alive (or
ready), over its admin listener: the container image's HEALTHCHECK and an exec probe.

The address comes from the configuration's `admin.listen` (so a changed port needs no
second place to change); a wildcard address (`0.0.0.0`, `::`) is asked on loopback.
Exit 0 when `/healthz` (or `/readyz` with `--ready`) answers 200; 1 when it answers
otherwise or nothing listens; 2 when the configuration is invalid or the listener is off.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any

from jobd.cli.common import Command, add_config, load_spec
from jobd.config.listen import parse_listen
from jobd.errors import JobdError, UsageError

DEFAULT_TIMEOUT_S = 2.0
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def register(sub: Any) -> dict[str, Command]:
    p = add_config(
        sub.add_parser(
            "health",
            help="ask the daemon of this configuration whether it is alive (exit 0) or not",
        )
    )
    p.add_argument(
        "--ready",
        action="store_true",
        help="ask /readyz (database reachable, schema migrated, engine running) "
        "instead of /healthz",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds to wait for the answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    return {"health": cmd_health}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 300")
    return value


def probe_url(listen: str, path: str) -> str:
    """The URL that reaches a listener bound to `listen` from this host."""
    host, port = parse_listen(listen)
    host = _WILDCARDS.get(host, host)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def cmd_health(args: argparse.Namespace) -> int:
    spec = load_spec(args)
    if spec.admin.listen is None:
        raise UsageError(
            "admin.listen is off in this configuration: there is no listener to ask; "
            "set admin.listen (e.g. 127.0.0.1:8370) to use jobd health"
        )
    path = "/readyz" if args.ready else "/healthz"
    url = probe_url(spec.admin.listen, path)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310
            status, body = response.status, response.read(4096)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(4096)
    except (OSError, ValueError) as exc:  # refused, timed out, unreachable
        reason = getattr(exc, "reason", None) or exc
        raise JobdError(
            f"no answer from {url} ({reason}): is the daemon of this configuration running?"
        ) from None
    if status == 200:
        print(f"{path}: ok ({url})")
        return 0
    raise JobdError(f"{path} answered {status}{_reasons(body)} ({url})")


def _reasons(body: bytes) -> str:
    try:
        reasons = json.loads(body).get("reasons")
    except (ValueError, AttributeError):
        return ""
    return f": {'; '.join(map(str, reasons))}" if isinstance(reasons, list) and reasons else ""
