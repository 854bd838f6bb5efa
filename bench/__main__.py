"""One entry point for every benchmark:

    .venv/bin/python -m bench all              # every measurement, as recorded
    .venv/bin/python -m bench all --quick      # small N, 1 repeat: a smoke test
    .venv/bin/python -m bench engine|latency|scheduler|trigger_path|memory|scaling|idle [--quick]
    .venv/bin/python -m bench console [--quick]      # the web console's pages, 1M jobs
    .venv/bin/python -m bench trigger_path --jobd-ref HEAD   # jobd/ as committed, not the tree

Prints each measurement's table, writes bench/results/<name>-<stamp>.json (all measured
sections, the machine, load average at start and end), replaces each section's table in
bench/README.md between its `<!-- results:NAME:start/end -->` markers (not with
--no-readme) and draws bench/results/summary.png with matplotlib (peers' virtualenv).
`all` also rewrites the README's machine section; a single measurement writes its run's
line (stamp, machine load, JSON) into its own section instead, so the machine section
keeps describing the run that produced the other tables.
A measurement that fails is reported as failed with its reason; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from bench import console, engine, events, idle, latency, memory, scaling, scheduler, trigger_path
from bench.harness import machine, results, runners, source
from bench.harness.db import server_url, server_version
from bench.runners.jobd_run import quiet_logs

PEER_PACKAGES = {
    "peers": ["pgqueuer", "procrastinate", "chancy", "matplotlib"],
    "peers312": ["oban"],
}


def engine_step(quick: bool) -> Coroutine[Any, Any, dict[str, Any]]:
    argv = ["--n", "2000", "--repeats", "1"] if quick else ["--n", "20000", "--repeats", "3"]
    return engine.collect(engine.parse_args(argv))


def trigger_path_step(quick: bool) -> Coroutine[Any, Any, dict[str, Any]]:
    argv = ["--n", "2000", "--rounds", "1"] if quick else []  # as recorded: N 20,000, 3 rounds
    return trigger_path.collect(trigger_path.parse_args(argv))


STEPS: dict[str, Callable[[bool], Coroutine[Any, Any, dict[str, Any]]]] = {
    "engine": engine_step,
    "latency": latency.collect,
    "scheduler": scheduler.collect,
    "trigger_path": trigger_path_step,
    "memory": memory.collect,
    "scaling": scaling.collect,
    "idle": idle.collect,
    "console": console.collect,
    "events": events.collect,
}


# the peers' virtualenvs each measurement runs (all of them for `all`, which draws the chart)
STEP_VENVS = {"engine": ("peers", "peers312"), "latency": ("peers",), "trigger_path": ("peers",)}


def describe_machine(venvs: set[str]) -> dict[str, Any]:
    pythons = {"jobd": runners.JOBD_PYTHON}
    # jobd's distribution is `pgjobd` (the import package and command are `jobd`)
    versions = {"jobd": runners.package_version(runners.JOBD_PYTHON, "pgjobd")}
    for venv, packages in PEER_PACKAGES.items():
        if venv not in venvs:
            continue
        try:
            python = runners.python_for(venv)
        except runners.RunnerFailed as exc:
            versions[venv] = f"virtualenv failed: {exc}"
            continue
        pythons[venv] = python
        versions |= {p: runners.package_version(python, p) for p in packages}
    mach = machine.describe(asyncio.run(server_version(server_url())), pythons)
    mach["versions"] = versions
    return mach


def run_step(name: str, quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    print(f"\n=== {name} ===", flush=True)
    try:
        out: dict[str, Any] = asyncio.run(STEPS[name](quick))
    except Exception as exc:
        traceback.print_exc()
        out = {
            "markdown": f"**Not measured: {type(exc).__name__}: {exc}**",
            "data": {},
            "failed": True,
        }
    out["seconds"] = round(time.monotonic() - started, 1)
    print(out["markdown"], flush=True)
    return out


def draw_chart(path: str) -> str:
    png = results.RESULTS_DIR / "summary.png"
    try:
        python = runners.python_for("peers")
        subprocess.run(
            [str(python), "-m", "bench.harness.chart", path, str(png)],
            cwd=runners.ROOT,
            check=True,
            timeout=120,
        )
    except (runners.RunnerFailed, subprocess.SubprocessError) as exc:
        return f"chart not drawn: {exc}"
    return str(png.relative_to(runners.ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("name", choices=["all", *STEPS], help="which measurement (all: every one)")
    p.add_argument("--quick", action="store_true", help="small N, one repeat (smoke test)")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    p.add_argument(
        "--jobd-ref",
        metavar="REV",
        help="jobd processes run jobd/ as committed at REV, not the working tree"
        " (bench/harness/source.py)",
    )
    ns = p.parse_args(argv)
    if ns.jobd_ref:
        os.environ[source.ENV_VAR] = ns.jobd_ref
    quiet_logs()  # in-process jobd (scheduler, trigger) logs warnings only
    names = list(STEPS) if ns.name == "all" else [ns.name]
    venvs = set(PEER_PACKAGES) if ns.name == "all" else set(STEP_VENVS.get(ns.name, ()))
    mach = describe_machine(venvs)
    mach["jobd_source"] = source.describe()
    stamp = results.stamp()
    print(machine.markdown(mach, {}), flush=True)
    sections = {name: run_step(name, ns.quick) for name in names}
    machine.finish(mach)
    payload = {"stamp": stamp, "quick": ns.quick, "machine": mach, **sections}
    path = results.write_json("all" if ns.name == "all" else ns.name, payload)
    chart = draw_chart(str(path)) if ns.name == "all" else ""
    quick = " (--quick)" if ns.quick else ""
    rel = path.relative_to(runners.ROOT)
    header = f"Run {stamp}{quick}: `python -m bench {ns.name}`; JSON `{rel}`."

    if not ns.no_readme and ns.name == "all":
        results.update_readme("machine", header + "\n\n" + machine.markdown(mach, {}))
        for name, out in sections.items():
            results.update_readme(name, out["markdown"])
    elif not ns.no_readme:
        run_line = machine.run_line(mach, header)
        for name, out in sections.items():
            results.update_readme(name, run_line + "\n\n" + out["markdown"])
    print(f"\n{machine.markdown(mach, {})}\n\nJSON: {path}\nchart: {chart}", flush=True)
    return 1 if any(out.get("failed") for out in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
