"""Summaries and Markdown tables of bench/trigger_path.py: rates against the peers with
issue 13's goals, the per-row cost of the jobd runs, and their statements by text."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from bench.harness.stats import summarize
from bench.trigger_setup import PGQUEUER, RAW, Variant

GOAL_VS_PGQUEUER = (1.5, 2.0)  # at least, goal
GOAL_HTTP_ROWS_S = 3000.0
GOAL_VS_RAW = (0.3, 0.5)


PER_ROW_KEYS = (
    "statements_per_row",
    "xacts_per_row",
    "xacts_per_row_client",
    "daemon_cpu_us_per_row",
    "postgres_cpu_us_per_row",
)


def summarize_runs(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        if not rs:
            continue
        s: dict[str, Any] = {"rows_per_s": summarize([r["rows_per_s"] for r in rs])}
        for key in PER_ROW_KEYS:
            values = [r[key] for r in rs if r.get(key) is not None]
            if values:
                s[key] = summarize_fine(values)
        conns = [r["connections"] for r in rs if "connections" in r]
        if conns:
            s["connections"] = {
                "peak_backends": max(c["peak"].get("backends", 0) for c in conns),
                "peak_active": max(c["peak"].get("active", 0) for c in conns),
                "peak_in_transaction": max(c["peak"].get("in_transaction", 0) for c in conns),
                "mean_in_transaction": summarize_fine(
                    [c["mean"].get("in_transaction", 0) for c in conns]
                ),
                "peak_idle_in_transaction": max(
                    c["peak"].get("idle_in_transaction", 0) for c in conns
                ),
                "peak_idle_in_transaction_holding_xid": max(
                    c["peak"].get("idle_in_transaction_holding_xid", 0) for c in conns
                ),
            }
        out[name] = s
    return out


def summarize_fine(values: list[float]) -> dict[str, float]:
    """Median, min, max with 3 decimals (per-row figures are small)."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def rate(s: dict[str, float]) -> str:
    return f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})"


def fine(s: dict[str, float] | None, digits: int = 2) -> str:
    if s is None:
        return ""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def rate_table(
    variants: list[Variant],
    summaries: dict[str, dict[str, Any]],
    failures: dict[str, str],
    reference: Variant,
    goal: Callable[[Variant, float], str],
) -> list[str]:
    ref = summaries.get(reference.name, {}).get("rows_per_s", {}).get("median")
    lines = [
        f"| measurement | rows/s median (min-max) | vs {reference.name} | issue 13 goal |",
        "|---|---|---|---|",
    ]
    for v in variants:
        if v.name in failures:
            lines.append(f"| {v.name} | not measured: {failures[v.name]} | | |")
            continue
        if v.name not in summaries:
            continue
        r = summaries[v.name]["rows_per_s"]
        vs = f"{r['median'] / ref:.2f}x" if ref else ""
        verdict = goal(v, r["median"] / ref if ref else 0.0)
        lines.append(f"| {v.name} | {rate(r)} | {vs} | {verdict} |")
    return lines


def python_goal(v: Variant, ratio: float) -> str:
    if v.kind != "jobd":
        return ""
    low, goal = GOAL_VS_PGQUEUER
    met = "met" if ratio >= low else "NOT met"
    return f">= {low}x pgqueuer (goal {goal}x): {met}"


def http_goal_for(summaries: dict[str, dict[str, Any]]) -> Callable[[Variant, float], str]:
    def goal(v: Variant, ratio: float) -> str:
        if v.kind != "jobd":
            return ""
        rows_s = summaries[v.name]["rows_per_s"]["median"]
        low, target = GOAL_VS_RAW
        met = "met" if rows_s >= GOAL_HTTP_ROWS_S and ratio >= low else "NOT met"
        return f">= {GOAL_HTTP_ROWS_S:,.0f} rows/s and >= {low}x raw (goal {target}x): {met}"

    return goal


def cost_table(
    variants: list[Variant], summaries: dict[str, dict[str, Any]], runs: dict[str, Any]
) -> list[str]:
    lines = [
        "| jobd trigger run | statements/row | transactions/row (pg_stat_database)"
        " | peak backends | peak in a transaction (mean) | peak idle in transaction holding locks"
        " | daemon CPU µs/row | Postgres CPU µs/row |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        s = summaries.get(v.name)
        if v.kind != "jobd" or s is None:
            continue
        c = s.get("connections", {})
        mean = c.get("mean_in_transaction", {}).get("median", 0)
        lines.append(
            f"| {v.name} | {fine(s.get('statements_per_row'))}"
            f" | {fine(s.get('xacts_per_row'))} | {c.get('peak_backends', '')}"
            f" | {c.get('peak_in_transaction', '')} ({mean:.1f})"
            f" | {c.get('peak_idle_in_transaction_holding_xid', '')}"
            f" | {fine(s.get('daemon_cpu_us_per_row'), 0)}"
            f" | {fine(s.get('postgres_cpu_us_per_row'), 0)} |"
        )
    return lines


def statements_table(name: str, runs: list[dict[str, Any]], n: int) -> list[str]:
    """Round trips per row by statement (the first 90 characters), from the median run."""
    counted = [r for r in runs if r.get("statements_by_text")]
    if not counted:
        return []
    counted.sort(key=lambda r: r["rows_per_s"])
    run = counted[len(counted) // 2]
    lines = [
        f"Statements per row by text, `{name}` (the round of median rate):",
        "",
        "| statements/row | statement (first 90 characters) |",
        "|---|---|",
    ]
    for text, count in list(run["statements_by_text"].items())[:10]:
        lines.append(f"| {count / n:.3f} | `{text.replace('|', '/')}` |")
    return lines


def markdown(
    args: argparse.Namespace,
    variants: list[Variant],
    runs: dict[str, list[dict[str, Any]]],
    summaries: dict[str, dict[str, Any]],
    failures: dict[str, str],
    meta: dict[str, Any],
) -> str:
    lines = [
        f"N = {args.n:,} rows, concurrency {args.concurrency}, {args.rounds} rounds"
        " (median, min-max; each round runs every variant once, in a rotated order)."
        " Clock: the trigger's scheduler job enqueued -> all N rows marked by on_success"
        f" (committed). jobd: {meta['jobd_source']}; {meta['counting']}."
        f" Load average (1 min) {meta['load_start']} at start, {meta['load_end']} at end.",
        "",
    ]
    python = [v for v in variants if v.part == "python"]
    http = [v for v in variants if v.http]
    if python:
        lines += [*rate_table(python, summaries, failures, PGQUEUER, python_goal), ""]
    if http:
        lines += [*rate_table(http, summaries, failures, RAW, http_goal_for(summaries)), ""]
    if not args.plain:
        lines += [*cost_table(variants, summaries, runs), ""]
    for v in variants:
        if v.kind == "jobd" and v.name in runs and not args.plain:
            lines += [*statements_table(v.name, runs[v.name], args.n), ""]
            break
    return "\n".join(lines).rstrip()
