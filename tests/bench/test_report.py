"""A run leaves result.json, summary.md and a PNG plot behind."""

from __future__ import annotations

import json
from pathlib import Path

from bench.load.fleet import Timeline
from bench.load.histograms import encode, new_histogram, record_ns
from bench.load.report import results_dir, write_results


def test_result_files_are_written(tmp_path: Path) -> None:
    timeline = Timeline()
    for second in (1, 2, 3):
        histogram = new_histogram()
        for ms in range(1, 20):
            record_ns(histogram, ms * 1_000_000)
        timeline.add(second, {"offered": 100, "acked": 99}, encode(histogram), encode(histogram))
    result = {
        "title": "write-load: test",
        "command": "python -m bench write-load --rate 100",
        "machine": {"cpu": "test cpu", "cores": 2, "memory_gib": 1.0, "python": "3.11"},
        "table": [("acked", "99 msg/s")],
        "verification": {"ok": True},
    }
    directory = write_results(results_dir(tmp_path), result, timeline)
    assert json.loads((directory / "result.json").read_text())["title"] == "write-load: test"
    summary = (directory / "summary.md").read_text()
    assert "| acked | 99 msg/s |" in summary
    assert "plot.png" in summary
    assert (directory / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_runs_in_the_same_second_get_separate_directories(tmp_path: Path) -> None:
    assert results_dir(tmp_path) != results_dir(tmp_path)
