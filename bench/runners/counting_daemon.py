"""`jobd` (the real CLI, e.g. `run -c FILE`) with a statement counter: bench-only wrapper.

    python -m bench.runners.counting_daemon --counts FILE -- run -c jobd.yaml

Before the CLI starts, asyncpg's `Connection.execute` (the path of statements sent without
arguments: BEGIN, COMMIT, LISTEN, the reset query) and `Connection._do_execute` (the path
of every statement with arguments, `fetch*` and `executemany`) are wrapped to count, per
process, each statement as it is sent:

- `statements`: statements sent (each one a round trip; a multi-statement text sent
  without arguments, like asyncpg's reset query, counts once);
- `transactions`: what the server counts in `pg_stat_database.xact_commit +
  xact_rollback`: one per `BEGIN`, one per statement sent outside a transaction (tracked
  per connection from the statement texts, in order), and one per connection opened by
  jobd (`jobd.sql.db.init_connection` is wrapped to count them: a backend reads the
  catalogs in a transaction of its own as it starts; measured, a daemon that opened 9
  connections and sent 43 transactions was counted 52 by the server);
- `connections`: connections jobd opened;
- `by_statement`: statements by their first 90 characters (where the round trips go).

asyncpg's public hook for this, `Connection.add_query_logger`, was tried first: it costs a
record, a timer and a scheduled callback per statement, measured at 70-150 µs of daemon
CPU per trigger row (10-15% of the rows/s). The wrappers here are plain functions that
count and hand back the original coroutine (about a microsecond). `_do_execute` is
private to asyncpg (checked at start against the installed version: 0.32).

Counts are written as one JSON object to FILE (replaced atomically): each time a line
arrives on stdin (the harness asks for a snapshot: `seq` goes up by one) and at exit
(`final: true`). The CLI's exit status is the wrapper's. Start-up and shutdown statements
are included in the totals; the harness takes differences of snapshots.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

TXN_START = ("BEGIN", "START TRANSACTION")
TXN_END = ("COMMIT", "END", "ROLLBACK", "ABORT")
KEY_CHARS = 90


class Counts:
    """Process-wide counters, written on the event loop's thread, read by the snapshot
    thread (a copy of `by_statement` that meets a new key being added is taken again)."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.connections = 0
        self.by_statement: Counter[str] = Counter()
        self.seq = 0

    def snapshot(self, final: bool = False) -> dict[str, Any]:
        while True:
            try:
                by_statement = dict(self.by_statement)
            except RuntimeError:  # "dictionary changed size during iteration"
                continue
            return {
                "seq": self.seq,
                "final": final,
                "pid": os.getpid(),
                "monotonic": time.monotonic(),
                "statements": self.statements,
                "transactions": self.transactions,
                "connections": self.connections,
                "by_statement": by_statement,
            }


COUNTS = Counts()


OTHER, BEGINS, ENDS = 0, 1, 2
_classified: dict[str, tuple[str, int]] = {}
_in_transaction: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def classify(query: str) -> tuple[str, int]:
    """(the statement's key: its first characters, whitespace folded; what it does to the
    transaction), computed once per distinct text (jobd's texts are long constants)."""
    known = _classified.get(query)
    if known is None:
        key = " ".join(query[: KEY_CHARS * 4].split())[:KEY_CHARS]
        head = key.upper()
        kind = OTHER
        if head.startswith(TXN_START):
            kind = BEGINS
        elif head.startswith(TXN_END) and not head.startswith("ROLLBACK TO"):
            kind = ENDS
        known = _classified[query] = (key, kind)
    return known


def count(conn: Any, query: str) -> None:
    """One statement sent on `conn` (in the order the connection sends them). Only the
    event loop's thread writes the counters; the snapshot thread only reads them."""
    key, kind = classify(query)
    counts = COUNTS
    counts.statements += 1
    counts.by_statement[key] += 1
    if kind == BEGINS:
        _in_transaction[conn] = True
        counts.transactions += 1
    elif kind == ENDS:
        _in_transaction[conn] = False
    elif not _in_transaction.get(conn, False):
        counts.transactions += 1


def install() -> None:
    """Wrap asyncpg's two statement paths and jobd's per-connection init."""
    import asyncpg.connection

    import jobd.sql.db as db

    cls = asyncpg.connection.Connection
    execute, do_execute = cls.execute, getattr(cls, "_do_execute", None)
    if do_execute is None:
        raise SystemExit(f"counting_daemon: asyncpg {asyncpg.__version__} has no _do_execute")

    def counting_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments, execute goes through _do_execute (counted there)
            count(self, query)
        return execute(self, query, *args, **kwargs)

    def counting_do_execute(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        count(self, query)
        return do_execute(self, query, *args, **kwargs)

    cls.execute = counting_execute  # type: ignore[method-assign]
    cls._do_execute = counting_do_execute  # type: ignore[attr-defined]
    original = db.init_connection

    async def counting_init(conn: Any) -> None:
        COUNTS.connections += 1
        COUNTS.transactions += 1  # the backend's start-up transaction
        await original(conn)

    db.init_connection = counting_init  # type: ignore[assignment]


def write(path: Path, snapshot: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot))
    tmp.replace(path)


def serve_snapshots(path: Path) -> None:
    """A daemon thread: one snapshot per line read from stdin."""

    def loop() -> None:
        for _line in sys.stdin:
            COUNTS.seq += 1
            write(path, COUNTS.snapshot())

    threading.Thread(target=loop, name="bench-counts", daemon=True).start()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", required=True, type=Path, help="where snapshots are written")
    p.add_argument("jobd_argv", nargs=argparse.REMAINDER, help="-- then jobd's arguments")
    ns = p.parse_args()
    argv = ns.jobd_argv[1:] if ns.jobd_argv[:1] == ["--"] else ns.jobd_argv
    install()
    write(ns.counts, COUNTS.snapshot())
    atexit.register(lambda: write(ns.counts, COUNTS.snapshot(final=True)))
    serve_snapshots(ns.counts)
    from jobd.cli.main import main as jobd_main

    return jobd_main(argv)


if __name__ == "__main__":
    sys.exit(main())
