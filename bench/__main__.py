"""One entry point for every benchmark:

    .venv/bin/python -m bench all              # the six measurements, as recorded
    .venv/bin/python -m bench all --quick      # small N, 1 repeat: a smoke test
    .venv/bin/python -m bench engine|latency|scheduler|trigger|memory|scaling [--quick]

Prints each measurement's table, writes bench/results/<name>-<stamp>.json (all measured
sections, the machine, load average at start and end), replaces each section's table in
bench/README.md between its `<!-- results:NAME:start/end -->` markers (not with
--no-readme) and draws bench/results/summary.png with matplotlib (peers' virtualenv).
A measurement that fails is reported as failed with its reason; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Coroutine
from typing import Any

from bench import engine, http_trigger, latency, memory, scaling, scheduler
from bench.harness import machine, results, runners
from bench.harness.db import server_url, server_version
from bench.runners.jobd_run import quiet_logs

PEER_PACKAGES = {
    "peers": ["pgqueuer", "procrastinate", "chancy", "matplotlib"],
    "peers312": ["oban"],
}


def engine_step(quick: bool) -> Coroutine[Any, Any, dict[str, Any]]:
    argv = ["--n", "2000", "--repeats", "1"] if quick else ["--n", "20000", "--repeats", "3"]
    return engine.collect(engine.parse_args(argv))


def trigger_step(quick: bool) -> Coroutine[Any, Any, dict[str, Any]]:
    argv = ["--n", "1000", "--repeats", "1"] if quick else ["--n", "10000", "--repeats", "2"]
    return http_trigger.collect(http_trigger.parse_args(argv))


STEPS: dict[str, Callable[[bool], Coroutine[Any, Any, dict[str, Any]]]] = {
    "engine": engine_step,
    "latency": latency.collect,
    "scheduler": scheduler.collect,
    "trigger": trigger_step,
    "memory": memory.collect,
    "scaling": scaling.collect,
}


def describe_machine() -> dict[str, Any]:
    pythons = {"jobd": runners.JOBD_PYTHON}
    # jobd's distribution is `pgjobd` (the import package and command are `jobd`)
    versions = {"jobd": runners.package_version(runners.JOBD_PYTHON, "pgjobd")}
    for venv, packages in PEER_PACKAGES.items():
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
    p.add_argument("name", choices=["all", *STEPS], help="which measurement (all: the six)")
    p.add_argument("--quick", action="store_true", help="small N, one repeat (smoke test)")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    ns = p.parse_args(argv)
    quiet_logs()  # in-process jobd (scheduler, trigger) logs warnings only
    names = list(STEPS) if ns.name == "all" else [ns.name]
    mach = describe_machine()
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

    if not ns.no_readme:
        results.update_readme("machine", header + "\n\n" + machine.markdown(mach, {}))
        for name, out in sections.items():
            results.update_readme(name, out["markdown"])
    print(f"\n{machine.markdown(mach, {})}\n\nJSON: {path}\nchart: {chart}", flush=True)
    return 1 if any(out.get("failed") for out in sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
