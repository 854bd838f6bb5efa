"""What the numbers were measured on: CPU, cores, RAM, Postgres, Python, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def python_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return out.stdout.strip()


def describe(postgres_version: str, pythons: dict[str, Path]) -> dict[str, Any]:
    """The machine as a dict; `pythons` maps a role (jobd, peers) to its interpreter."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "postgres": postgres_version,
        "python": {role: python_version(path) for role, path in pythons.items()},
        # Other work on the machine skews the numbers: record how busy it was at the start.
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def finish(machine: dict[str, Any]) -> None:
    """Record the load average at the end of the run."""
    machine["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)


def markdown(machine: dict[str, Any], versions: dict[str, str]) -> str:
    """The machine as markdown bullet lines (`versions`: library -> version)."""
    pythons = ", ".join(f"{role} {v}" for role, v in machine["python"].items())
    versions = versions or machine.get("versions", {})
    libs = ", ".join(f"{name} {v}" for name, v in sorted(versions.items()))
    load = f"load average (1 min) at start {machine.get('load_avg_1m_at_start')}"
    if "load_avg_1m_at_end" in machine:
        load += f", at end {machine['load_avg_1m_at_end']}"
    lines = [
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; RAM {machine['ram_gib']} GiB;"
        f" {machine['os']}; {load}",
        f"- PostgreSQL {machine['postgres']} (same server for every library)",
        f"- Python: {pythons}",
        f"- Libraries: {libs}",
    ]
    if machine.get("jobd_source"):
        lines.append(f"- jobd code: {machine['jobd_source']}")
    return "\n".join(lines)


def run_line(machine: dict[str, Any], header: str) -> str:
    """One paragraph for a section measured on its own: the run, the load, the code."""
    load = (
        f"load average (1 min) {machine.get('load_avg_1m_at_start')} at start,"
        f" {machine.get('load_avg_1m_at_end')} at end"
    )
    source = f"; jobd code: {machine['jobd_source']}" if machine.get("jobd_source") else ""
    return f"*{header} {machine['cpu']}, {machine['cores']} cores; {load}{source}.*"
