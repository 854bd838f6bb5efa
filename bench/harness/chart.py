"""Draw bench/results/summary.png from a `python -m bench` results JSON, with matplotlib.

Run by the harness with the peers' interpreter (bench/.venv-peers has matplotlib; the
project's .venv does not need it):

    bench/.venv-peers/bin/python -m bench.harness.chart RESULTS.json OUT.png

Only stdlib + matplotlib here. A measurement missing from the JSON leaves its panel empty.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def bars(
    ax: Any, title: str, labels: list[str], values: list[float], unit: str, all_jobd: bool = False
) -> None:
    colors = ["tab:green" if all_jobd or x.startswith("jobd") else "tab:gray" for x in labels]
    ax.bar(labels, values, color=colors)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    for i, v in enumerate(values):
        ax.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=6)


def draw(res: dict[str, Any], out: str) -> None:
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    ax = list(axes.flat)
    eng = res.get("engine", {}).get("data", {}).get("summary", {})
    if eng:
        libs = list(eng)
        bars(
            ax[0],
            "1. drain (no-op jobs)",
            libs,
            [eng[x]["drain_per_s"]["median"] for x in libs],
            "jobs/s",
        )
        bars(
            ax[1],
            "1. enqueue (bulk)",
            libs,
            [eng[x]["enqueue_per_s"]["median"] for x in libs],
            "jobs/s",
        )
    lat = res.get("latency", {}).get("data", {}).get("rows", [])
    if lat:
        labels = [f"{r['library']} {'idle' if r['load_n'] == 0 else 'load'}" for r in lat]
        x = range(len(lat))
        ax[2].bar([i - 0.2 for i in x], [r["p50_ms"] for r in lat], 0.4, label="p50")
        ax[2].bar([i + 0.2 for i in x], [r["p99_ms"] for r in lat], 0.4, label="p99")
        ax[2].set_xticks(list(x), labels, rotation=30, fontsize=7)
        ax[2].set_title("2. pickup latency", fontsize=9)
        ax[2].set_ylabel("ms", fontsize=8)
        ax[2].legend(fontsize=7)
    sched = res.get("scheduler", {}).get("data", {}).get("summary", {})
    if sched:
        names = list(sched)
        bars(
            ax[3],
            "3. scheduler scan vs raw INSERT ... SELECT",
            names,
            [sched[v]["median"] for v in names],
            "rows/s",
        )
    trig = res.get("trigger_path", {}).get("data", {}).get("summaries", {})
    if trig:
        names = list(trig)
        short = [
            n.replace("jobd trigger", "jobd").replace("action_in_transaction", "a_i_t")
            for n in names
        ]
        bars(
            ax[4],
            "4. end-to-end trigger",
            short,
            [trig[n]["rows_per_s"]["median"] for n in names],
            "rows/s",
        )
    mem = res.get("memory", {}).get("data", {})
    if mem:
        labels = ["idle"] + [f"{a['rows']:,} rows" for a in mem["after_scheduler"]] + ["load peak"]
        values = (
            [mem["idle_kib"]]
            + [a["rss_kib"] for a in mem["after_scheduler"]]
            + [mem["load_peak_kib"]]
        )
        bars(ax[5], "5. daemon RSS (50 triggers)", labels, [v / 1024 for v in values], "MiB", True)
    scal = res.get("scaling", {}).get("data", {}).get("summary", {})
    if scal:
        ks = list(scal)
        bars(
            ax[6],
            "6. drain vs engine processes",
            [f"jobd x{k}" for k in ks],
            [scal[k]["median"] for k in ks],
            "jobs/s",
        )
    mach = res.get("machine", {})
    ax[7].axis("off")
    ax[7].text(
        0,
        1,
        "\n".join(
            [
                f"{mach.get('cpu', '')}",
                f"{mach.get('cores')} cores, {mach.get('ram_gib')} GiB",
                f"PostgreSQL {mach.get('postgres', '')}",
                f"load avg 1m: {mach.get('load_avg_1m_at_start')}"
                f" -> {mach.get('load_avg_1m_at_end')}",
                f"run {res.get('stamp', '')}",
            ]
        ),
        va="top",
        fontsize=8,
    )
    fig.suptitle("jobd benchmarks (green: jobd)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        draw(json.load(f), sys.argv[2])
