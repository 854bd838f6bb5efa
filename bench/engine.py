"""Engine benchmark: enqueue and drain throughput of jobd and its Python peers, in one run,
on one Postgres server and one machine.

For each library and each repeat, a fresh database gets N no-op jobs through the library's
bulk insert (timed: enqueue), then ONE worker process with the same concurrency runs them
all (timed: drain, from worker start until the database shows all N finished). What is
timed, and how each library is configured, is documented in bench/runners/common.py, the
runner modules and bench/README.md.

Usage, from the repository root:

    .venv/bin/python -m bench.engine                 # N=20000, concurrency 50, 3 repeats
    .venv/bin/python -m bench.engine --n 2000 --repeats 1 --no-readme   # a quick look

Writes bench/results/engine-<stamp>.json and the table in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import machine, results, runners
from bench.harness.db import fresh_database, server_url, server_version
from bench.harness.stats import ratio, summarize

Runs = dict[str, list[dict[str, Any]]]  # library -> one result line per repeat

BENCHMARK = "engine"
TARGET_DRAIN_RATIO = 2.0
METRICS = (("enqueue_per_s", "enqueue jobs/s"), ("drain_per_s", "drain jobs/s"))


@dataclass(frozen=True)
class Library:
    name: str
    module: str
    venv: str  # "jobd" (the project's .venv), "peers" (3.11) or "peers312" (3.12)

    @property
    def peer(self) -> bool:
        return self.venv != "jobd"

    def python(self) -> Path:
        return runners.python_for(self.venv)


LIBRARIES = {
    lib.name: lib
    for lib in (
        Library("jobd", "bench.runners.jobd_run", "jobd"),
        Library("pgqueuer", "bench.peers.pgqueuer_run", "peers"),
        Library("procrastinate", "bench.peers.procrastinate_run", "peers"),
        Library("chancy", "bench.peers.chancy_run", "peers"),
        Library("oban-py", "bench.peers.oban_run", "peers312"),
    )
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000, help="jobs per measurement")
    p.add_argument("--concurrency", type=int, default=50, help="jobs in flight per worker")
    p.add_argument("--repeats", type=int, default=3, help="measurements per library")
    p.add_argument("--insert-batch", type=int, default=5_000, help="jobs per insert call")
    p.add_argument("--pool-size", type=int, default=10, help="connections where pooled")
    p.add_argument("--timeout-s", type=float, default=300.0, help="per measurement")
    p.add_argument("--libraries", default=",".join(LIBRARIES), help="comma-separated subset to run")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    return p.parse_args(argv)


MEASURE_ATTEMPTS = 3  # a shared server may be briefly out of connections


async def measure(lib: Library, args: argparse.Namespace, admin_url: str) -> dict[str, Any]:
    """One measurement of one library in a fresh database; retried (fresh database again)
    only when the server refused a connection for being full."""
    for attempt in range(1, MEASURE_ATTEMPTS + 1):
        try:
            return await measure_once(lib, args, admin_url)
        except runners.RunnerFailed as exc:
            if "too many clients" not in str(exc) or attempt == MEASURE_ATTEMPTS:
                raise
            print(f"{lib.name}: server full, measuring again", flush=True)
            await asyncio.sleep(5)
    raise AssertionError("unreachable")


async def measure_once(lib: Library, args: argparse.Namespace, admin_url: str) -> dict[str, Any]:
    async with fresh_database(admin_url, prefix=f"bench_{lib.name}") as dsn:
        options = {
            "dsn": dsn,
            "n": args.n,
            "concurrency": args.concurrency,
            "insert_batch": args.insert_batch,
            "pool_size": args.pool_size,
            "timeout_s": args.timeout_s,
        }
        # The runner is a blocking subprocess: run it off the loop.
        return await asyncio.to_thread(
            runners.run, lib.python(), lib.module, options, args.timeout_s + 60
        )


async def measure_all(
    args: argparse.Namespace, libs: list[Library], failures: dict[str, str]
) -> Runs:
    """`repeats` rounds; each round runs every library once, in a rotated order so slow
    drift of the machine (other load, caches) does not always favour the same library.
    A library that fails to install or run is recorded in `failures` (with the reason)
    and not measured again; the others go on."""
    admin_url = server_url()
    runs: Runs = {lib.name: [] for lib in libs}
    for round_no in range(args.repeats):
        order = libs[round_no % len(libs) :] + libs[: round_no % len(libs)]
        for lib in (lib for lib in order if lib.name not in failures):
            try:
                result = await measure(lib, args, admin_url)
            except runners.RunnerFailed as exc:
                failures[lib.name] = str(exc).strip().splitlines()[-1][:300]
                print(f"{lib.name}: FAILED: {failures[lib.name]}", flush=True)
                continue
            runs[lib.name].append(result)
            print(
                f"round {round_no + 1}/{args.repeats} {lib.name:14s} "
                f"enqueue {result['enqueue_per_s']:>9,.0f} jobs/s  "
                f"drain {result['drain_per_s']:>9,.0f} jobs/s  rows kept {result['rows_kept']}",
                flush=True,
            )
    return {lib: rs for lib, rs in runs.items() if rs and lib not in failures}


def summarize_runs(runs: Runs) -> dict[str, dict[str, dict[str, float]]]:
    return {
        lib: {key: summarize([r[key] for r in rs]) for key, _title in METRICS}
        for lib, rs in runs.items()
    }


def extra_columns(runs: Runs) -> dict[str, dict[str, str]]:
    cols: dict[str, dict[str, str]] = {}
    for lib, rs in runs.items():
        first = rs[0]
        kept = first["rows_kept"] >= first["n"]
        cols[lib] = {
            "completed rows": "kept" if kept else "**deleted**",
            "driver / insert API": f"{first['notes']['driver']}; {first['notes']['insert_api']}",
        }
    return cols


def verdict(summaries: dict[str, dict[str, dict[str, float]]]) -> str:
    if "jobd" not in summaries or len(summaries) < 2:
        return ""
    peer, reference = results.fastest_peer(summaries, "drain_per_s", "jobd")
    r = ratio(summaries["jobd"]["drain_per_s"]["median"], reference) or 0.0
    met = "met" if r >= TARGET_DRAIN_RATIO else "NOT met"
    return (
        f"jobd drain median = {r:.2f}x the fastest peer ({peer}); "
        f"target {TARGET_DRAIN_RATIO:.0f}x: {met}."
    )


def report(args: argparse.Namespace, runs: Runs, failures: dict[str, str]) -> str:
    summaries = summarize_runs(runs)
    table = results.markdown_table(summaries, METRICS, extra=extra_columns(runs))
    versions = ", ".join(f"{lib} {rs[0]['version']}" for lib, rs in runs.items())
    failed = [f"- **{lib}: not measured** -- {reason}" for lib, reason in failures.items()]
    return "\n\n".join(
        part
        for part in [
            f"N = {args.n:,} no-op jobs, concurrency {args.concurrency},"
            f" insert batch {args.insert_batch:,}, pool size {args.pool_size},"
            f" {args.repeats} repeats per library (median, min-max). Versions: {versions}.",
            table,
            "\n".join(failed),
            verdict(summaries),
        ]
        if part
    )


async def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; returns {"markdown", "data"} for the harness."""
    libs = [LIBRARIES[name] for name in args.libraries.split(",") if name]
    failures: dict[str, str] = {}
    runs = await measure_all(args, libs, failures)
    summary = summarize_runs(runs)
    return {
        "markdown": report(args, runs, failures),
        "data": {"args": vars(args), "runs": runs, "summary": summary, "failures": failures},
    }


async def main_async(args: argparse.Namespace) -> int:
    pythons = {"jobd": runners.JOBD_PYTHON, "peers": runners.ensure_peers_venv()}
    mach = machine.describe(await server_version(server_url()), pythons)
    out = await collect(args)
    text = machine.markdown(mach, {}) + "\n\n" + out["markdown"]
    path = results.write_json(BENCHMARK, {"machine": mach, **out["data"]})
    print("\n" + text + f"\n\nJSON: {path.relative_to(results.BENCH.parent)}")
    if not args.no_readme:
        results.update_readme(BENCHMARK, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main_async(args))
    except runners.RunnerFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
