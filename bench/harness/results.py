"""Results: a JSON file per run under bench/results/, a markdown table with ratios to the
fastest peer, and a marked section of bench/README.md replaced by the latest table."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness.stats import ratio

BENCH = Path(__file__).resolve().parents[1]
RESULTS_DIR = BENCH / "results"
README = BENCH / "README.md"

# summaries[library][metric] = {"median", "min", "max"}
Summaries = Mapping[str, Mapping[str, Mapping[str, float]]]


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_json(benchmark: str, payload: Mapping[str, Any]) -> Path:
    """Write `bench/results/<benchmark>-<utc stamp>.json`; returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{benchmark}-{stamp()}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def fastest_peer(summaries: Summaries, metric: str, subject: str) -> tuple[str, float]:
    """The peer (any library but `subject`) with the highest median of `metric`."""
    peers = [(lib, s[metric]["median"]) for lib, s in summaries.items() if lib != subject]
    if not peers:
        return ("", 0.0)
    return max(peers, key=lambda pair: pair[1])


def markdown_table(
    summaries: Summaries,
    metrics: Sequence[tuple[str, str]],
    *,
    subject: str = "jobd",
    extra: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """One row per library; per metric (key, title): `median (min-max)` and the ratio of
    the median to the fastest peer's median. `extra[library][column]` adds text columns."""
    extra = extra or {}
    extra_cols = sorted({col for cols in extra.values() for col in cols})
    header = ["library", *extra_cols]
    for _key, title in metrics:
        header += [f"{title} median (min-max)", f"{title} vs fastest peer"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for lib, summary in summaries.items():
        cells = [lib, *(extra.get(lib, {}).get(col, "") for col in extra_cols)]
        for key, _title in metrics:
            s = summary[key]
            _peer, reference = fastest_peer(summaries, key, subject)
            r = ratio(s["median"], reference)
            cells += [
                f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f})",
                "" if r is None else f"{r:.2f}x",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_readme(section: str, body: str, readme: Path = README) -> None:
    """Replace the text between `<!-- results:<section>:start -->` and `...:end -->` in the
    README (appending the markers at the end if they are missing)."""
    start, end = f"<!-- results:{section}:start -->", f"<!-- results:{section}:end -->"
    text = readme.read_text() if readme.exists() else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
