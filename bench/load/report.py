"""What a run leaves behind: a table on the terminal, and ``bench/results/<timestamp>/`` with
``result.json`` (every figure, the options and the machine), ``summary.md`` (the same for
humans) and ``plot.png`` (latency percentiles and throughput per second).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load.fleet import Timeline

RESULTS_ROOT = Path(__file__).resolve().parents[1] / "results"


def machine() -> dict[str, Any]:
    """The machine the figures belong to."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    with contextlib.suppress(ValueError, OSError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def timeline_rows(timeline: Timeline) -> list[dict[str, float]]:
    rows = []
    for second in sorted(timeline.seconds):
        entry = timeline.seconds[second]
        count = entry.ack.get_total_count()
        dcount = entry.delivery.get_total_count()
        rows.append(
            {
                "second": float(second),
                "offered": float(entry.offered),
                "acked": float(entry.acked),
                "errors": float(entry.errors),
                "ack_p50_ms": entry.ack.get_value_at_percentile(50) / 1000 if count else 0.0,
                "ack_p99_ms": entry.ack.get_value_at_percentile(99) / 1000 if count else 0.0,
                "ack_max_ms": entry.ack.get_max_value() / 1000 if count else 0.0,
                "delivery_p99_ms": (
                    entry.delivery.get_value_at_percentile(99) / 1000 if dcount else 0.0
                ),
            }
        )
    return rows


def table(result: Mapping[str, Any]) -> str:
    """The terminal table: one figure per line, aligned."""
    lines = [f"== {result['title']} =="]
    for label, value in result["table"]:
        lines.append(f"  {label:<34} {value}")
    return "\n".join(lines)


def results_dir(root: Path | None = None) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = (root or RESULTS_ROOT) / stamp
    n = 1
    while path.exists():
        n += 1
        path = (root or RESULTS_ROOT) / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def write_results(directory: Path, result: Mapping[str, Any], timeline: Timeline | None) -> Path:
    """result.json, summary.md and (with a timeline) plot.png in ``directory``."""
    (directory / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    summary = [
        f"# {result['title']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, "
        f"{result['machine']['memory_gib']} GiB, Python {result['machine']['python']}",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in result["table"]),
        "",
    ]
    verification = result.get("verification")
    if verification:
        summary += ["## Verification", "", "```", json.dumps(verification, indent=2), "```", ""]
    if timeline is not None and timeline.seconds:
        plot(directory / "plot.png", timeline_rows(timeline), str(result["title"]))
        summary += ["![latency and throughput over time](plot.png)", ""]
    (directory / "summary.md").write_text("\n".join(summary))
    return directory


def plot(path: Path, rows: list[dict[str, float]], title: str) -> None:
    """Two panels sharing the time axis: ack latency percentiles, and offered/acked per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    seconds = [r["second"] for r in rows]
    figure, (latency, rate) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for key, label in (
        ("ack_p50_ms", "send→ack p50"),
        ("ack_p99_ms", "send→ack p99"),
        ("ack_max_ms", "send→ack max"),
        ("delivery_p99_ms", "send→delivery p99"),
    ):
        latency.plot(seconds, [max(r[key], 0.01) for r in rows], label=label)
    latency.set_ylabel("ms (log scale)")
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(ScalarFormatter())
    latency.legend(loc="upper left", fontsize="small")
    latency.grid(True, alpha=0.3)
    latency.set_title(title)
    rate.plot(seconds, [r["offered"] for r in rows], label="offered/s")
    rate.plot(seconds, [r["acked"] for r in rows], label="acked/s")
    rate.plot(seconds, [r["errors"] for r in rows], label="errors/s")
    rate.set_xlabel("seconds since start (each point: the second ending there)")
    rate.set_ylabel("messages per second")
    rate.legend(loc="lower right", fontsize="small")
    rate.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
