"""The real harness end to end, tiny and short, so the bench cannot rot.

Each run starts its own gateway subprocess (embedded PostgreSQL and CQL) and generator
processes for a couple of seconds, verifies what it read or wrote, and writes its result
files. Nothing about throughput or latency is asserted — only that the run completes,
verifies and reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_open_loop_run_verifies_and_writes_its_results(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench", "write-load",
        "--rate", "40", "--duration", "2", "--warmup", "0.5", "--drain", "10",
        "--processes", "2", "--events", "4", "--participants", "3",
        "--results", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (directory,) = tmp_path.iterdir()
    result = json.loads((directory / "result.json").read_text())
    assert result["verification"]["ok"]
    assert result["verification"]["checked_messages"] > 0
    assert result["summary"]["errors"] == {}
    assert (directory / "summary.md").exists()
    assert (directory / "plot.png").exists()


def test_a_tiny_mixed_run_checks_its_pages_and_writes_its_results(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench", "mixed",
        "--duration", "2", "--warmup", "0.5", "--drain", "10",
        "--events", "3", "--writers", "2", "--readers", "1", "--quiet-events", "1",
        "--history", "20", "--quiet-history", "20", "--write-rate", "20",
        "--read-rate", "10", "--store-read-rate", "10", "--writer-processes", "1",
        "--storm-subscribers", "20", "--results", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (directory,) = tmp_path.iterdir()
    result = json.loads((directory / "result.json").read_text())
    assert result["verification"]["ok"]
    assert result["verification"]["checked_pages"] > 0
    assert result["storm"]["resumed"] == 20
    assert any(name.startswith("store:") for name in result["reads"])
    assert (directory / "plot.png").exists()


def test_a_short_abuse_run_reports_each_attack_and_how_it_was_limited(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "bench", "abuse",
        "--attacks", "typing,connections", "--duration", "2",
        "--results", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "victim p99" in done.stdout  # the live progress lines
    (directory,) = tmp_path.iterdir()
    typing, connections = json.loads((directory / "result.json").read_text())["result"]
    assert typing["attack"] == "typing"
    assert typing["rss_growth_mib"] is not None
    assert typing["victim"]["answered"] > 0
    assert typing["victim"]["typing_frames"] <= 4  # about one a second, not one per toggle
    assert connections["attacker"]["closes"]["4429"] == 190
    assert connections["details"]["accepted"] == 10
