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
from collections.abc import Callable, Mapping
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


def write_results(
    directory: Path,
    result: Mapping[str, Any],
    timeline: Timeline | None,
    plotter: Callable[[Path, Timeline, str], None] | None = None,
) -> Path:
    """result.json, summary.md and (with a timeline) plot.png in ``directory``; ``plotter``
    draws the plot (default: the write-load's latency and throughput panels)."""
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
        if plotter is not None:
            plotter(directory / "plot.png", timeline, str(result["title"]))
        else:
            plot(directory / "plot.png", timeline_rows(timeline), str(result["title"]))
        summary += ["![latency and throughput over time](plot.png)", ""]
    (directory / "summary.md").write_text("\n".join(summary))
    return directory


Series = tuple[str, list[float]]
"""A line: its label and one value per second."""


def plot_panels(
    path: Path,
    title: str,
    seconds: list[float],
    panels: list[tuple[str, bool, list[Series]]],
) -> None:
    """Panels sharing the time axis, each ``(y label, log scale, lines)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.25 * len(panels)), sharex=True)
    for n, (axis, (ylabel, log, lines)) in enumerate(zip(figure.axes, panels, strict=True)):
        for label, values in lines:
            axis.plot(seconds, [max(v, 0.01) for v in values] if log else values, label=label)
        axis.set_ylabel(ylabel)
        if log:
            axis.set_yscale("log")
            axis.yaxis.set_major_formatter(ScalarFormatter())
        axis.legend(loc="upper left" if n == 0 else "lower right", fontsize="small")
        axis.grid(True, alpha=0.3)
        if n == 0:
            axis.set_title(title)
    axes[-1].set_xlabel("seconds since start (each point: the second ending there)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot(path: Path, rows: list[dict[str, float]], title: str) -> None:
    """Two panels sharing the time axis: ack latency percentiles, and offered/acked per second."""
    latency = [
        (label, [r[key] for r in rows])
        for key, label in (
            ("ack_p50_ms", "send→ack p50"),
            ("ack_p99_ms", "send→ack p99"),
            ("ack_max_ms", "send→ack max"),
            ("delivery_p99_ms", "send→delivery p99"),
        )
    ]
    rate = [
        (label, [r[key] for r in rows])
        for key, label in (("offered", "offered/s"), ("acked", "acked/s"), ("errors", "errors/s"))
    ]
    seconds = [r["second"] for r in rows]
    plot_panels(
        path,
        title,
        seconds,
        [("ms (log scale)", True, latency), ("messages per second", False, rate)],
    )
