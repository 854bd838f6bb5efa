"""The embedded Postgres for development: used when `database.url` is not set.

It is pgserver's PostgreSQL (the `embedded` extra) with its data in `./.jobd/pgdata`, started
on first use and stopped when the process exits. It is for trying jobd out and for tests,
never for production; the daemon says so in its log.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from jobd.errors import JobdError

DEFAULT_DATA_DIR = Path(".jobd") / "pgdata"


class EmbeddedUnavailable(JobdError):
    """pgserver is not installed or could not start a server."""

    exit_code = 1


def start_embedded(data_dir: Path = DEFAULT_DATA_DIR) -> tuple[str, Any]:
    """Start (or reuse) the embedded server; returns its URL and a handle to keep alive."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "database.url is not set and the embedded Postgres is not installed; "
            "install it with `pip install 'pgjobd[embedded]'` or set database.url"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(str(data_dir.resolve()), cleanup_mode="stop")
    except Exception as exc:
        raise EmbeddedUnavailable(
            f"could not start the embedded Postgres in {data_dir}: {exc}"
        ) from exc
    return str(server.get_uri()), server
