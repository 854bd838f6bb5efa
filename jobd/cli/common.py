"""What every command shares: the config option, the database connection, finding a
trigger or schedule by name, the JSON argument parsing, and table/JSON output."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from jobd.engine.ops import to_jsonable
from jobd.errors import DatabaseError, UnknownTrigger, UsageError, did_you_mean
from jobd.model import Resource, Schedule, Spec, Trigger
from jobd.sql.driver import Pool
from jobd.sql.values import json_problem, loads_json, text_problem

T = TypeVar("T")
Command = Callable[[argparse.Namespace], int]
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 3.0


def add_config(
    parser: argparse.ArgumentParser, *, before_command: bool = False
) -> argparse.ArgumentParser:
    """`-c/--config FILE`, on the top-level parser (`before_command`: `jobd -c f status`)
    and on each command's. A command's own option does not overwrite the top-level value
    when it is not given (its default is SUPPRESS)."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        default=None if before_command else argparse.SUPPRESS,
        help="configuration file (default: $JOBD_CONFIG, then ./jobd.yaml)",
    )
    return parser


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def config_path(args: argparse.Namespace) -> Path:
    """`-c`, else `$JOBD_CONFIG`, else `./jobd.yaml`."""
    given: Path | None = getattr(args, "config", None)
    return given or Path(os.environ.get("JOBD_CONFIG") or "jobd.yaml")


def check_arguments(args: argparse.Namespace) -> None:
    """Every text argument must be text Postgres can take: bytes that are not UTF-8
    reach Python as surrogates (and a NUL cannot be typed, but a file could give one)."""
    for name, value in vars(args).items():
        for text in value if isinstance(value, list) else [value]:
            problem = text_problem(text) if isinstance(text, str) else None
            if problem:
                raise UsageError(f"argument {name.replace('_', '-')} {problem}")


def load_spec(args: argparse.Namespace) -> Spec:
    from jobd.config import load_config

    path = config_path(args)
    if not path.exists():
        raise UsageError(f"configuration file {path} not found; pass -c FILE or set JOBD_CONFIG")
    return load_config(path)


@dataclass
class Db:
    """An open pool on the configuration's database."""

    spec: Spec
    pool: Pool
    schema: str
    config: Path | None = None  # the file the spec came from


def find_resource(spec: Spec, name: str) -> Resource:
    if name not in spec.resources:
        raise UsageError(f"unknown resource {name!r}; {did_you_mean(name, spec.resources)}")
    return spec.resources[name]


def _named(known: Mapping[str, T], name: str, kind: str, resource: str) -> T:
    if name not in known:
        hint = did_you_mean(name, known)
        raise UsageError(f"resource {resource!r} has no {kind} {name!r}; {hint}")
    return known[name]


def find_trigger(
    spec: Spec, resource: str, trigger: str, *, to_run: bool = False
) -> tuple[Resource, Trigger]:
    """The resource and trigger by name; `to_run`: one that may get jobs (a trigger whose
    state is `deleted` gets none, in every interface)."""
    res = find_resource(spec, resource)
    found = _named(res.triggers, trigger, "trigger", resource)
    if to_run and found.state == "deleted":
        raise UnknownTrigger(
            f"trigger {trigger!r} of resource {resource!r} is deleted (state: deleted), so "
            "it runs no jobs; set its state to active to run it"
        )
    return res, found


def find_schedule(spec: Spec, resource: str, name: str) -> tuple[Resource, Schedule]:
    res = find_resource(spec, resource)
    return res, _named(res.scheduled_actions, name, "scheduled action", resource)


@contextlib.asynccontextmanager
async def database(spec: Spec) -> AsyncIterator[Db]:
    """A small pool on `database.url` (or the embedded server); DatabaseError when down."""
    from jobd.sql.db import URL_ERRORS, describe_url, init_connection
    from jobd.sql.dsn import url_error

    url: str = spec.database.url or ""
    embedded: Any = None
    if not url:
        from jobd.daemon.embedded import start_embedded

        url, embedded = await asyncio.to_thread(start_embedded)
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=1,
            max_size=3,
            init=init_connection,
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"application_name": "jobd-cli"},
        )
    except URL_ERRORS as exc:  # before any connection: the URL itself (exit 2)
        raise url_error(url, str(exc)) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = type(exc).__name__
        if isinstance(exc, asyncpg.PostgresError):  # the server answered: its message is safe
            reason = f"{reason}: {exc}"
        raise DatabaseError(
            f"cannot connect to the database at {describe_url(url)}: it is down or refuses "
            f"connections ({reason}); check database.url and that Postgres runs"
        ) from exc
    try:
        yield Db(spec, pool, spec.database.schema)
    finally:
        # A command cut short (Ctrl-C) may leave a connection mid-query: asyncpg's close
        # waits for it without a bound, so a command could hang after Ctrl-C; give it a
        # moment, then drop the connections.
        try:
            await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            pool.terminate()
        del embedded  # the embedded server stops when its handle goes


def parse_json(text: str, option: str) -> Any:
    """JSON from an option (no NaN or Infinity), whose every string Postgres can take."""
    try:
        value = loads_json(text)
    except ValueError as exc:
        raise UsageError(
            f"{option}: not valid JSON ({exc}); e.g. {option} '{{\"id\": 7}}' "
            "(quote it for the shell)"
        ) from None
    problem = json_problem(value, option)
    if problem:
        raise UsageError(problem)
    return value


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    if text is None:
        return None
    value = parse_json(text, option)
    if not isinstance(value, dict):
        raise UsageError(f"{option} must be a JSON object, got {type(value).__name__}")
    return value


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2, default=str))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Aligned columns with a header line."""
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    header = [c.upper() for c in columns]
    for line in [header, *cells]:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip())
        sys.stdout.write("\n")


def command(fn: Callable[[argparse.Namespace, Db], Awaitable[int]]) -> Command:
    """Turn `async fn(args, db)` into `cmd(args) -> int` with the database open."""

    def cmd(args: argparse.Namespace) -> int:
        from jobd.logging import configure

        configure(level="warning", stream=sys.stderr)  # stdout is for the command's output
        spec = load_spec(args)

        async def main() -> int:
            async with database(spec) as db:
                db.config = config_path(args)
                return await fn(args, db)

        return asyncio.run(main())

    cmd.__doc__ = fn.__doc__
    return cmd
