"""The real harness end to end, tiny and short, so the bench cannot rot.

Each test runs ``python -m bench`` as a user would (its own gateway subprocess, embedded
PostgreSQL and CQL, generator processes) for a few seconds and checks that the run completes,
verifies and reports. Nothing about throughput is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(results: Path, *args: str) -> tuple[str, Path, Any]:
    """``python -m bench ARGS --results RESULTS``, which must exit 0: its output, its result
    directory and its ``result.json``."""
    command = [sys.executable, "-m", "bench", *args, "--results", str(results)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (directory,) = results.iterdir()
    return done.stdout, directory, json.loads((directory / "result.json").read_text())


def test_a_tiny_open_loop_run_verifies_and_writes_its_results(tmp_path: Path) -> None:
    _, directory, result = run_bench(
        tmp_path,
        "write-load", "--rate", "40", "--duration", "2", "--warmup", "0.5", "--drain", "10",
        "--processes", "2", "--events", "4", "--participants", "3",
    )  # fmt: skip
    assert result["verification"]["ok"]
    assert result["verification"]["checked_messages"] > 0
    assert result["summary"]["errors"] == {}
    assert (directory / "summary.md").exists()
    assert (directory / "plot.png").exists()


def test_a_run_against_two_workers_with_drops_sees_every_message_once_in_store_order(
    tmp_path: Path,
) -> None:
    """``chat serve --workers 2`` (a private nats-server between the workers) and clients
    dropped abruptly and resumed: the store order holds for every client view."""
    _, _, result = run_bench(
        tmp_path,
        "write-load", "--workers", "2", "--drops", "30", "--delivery-order", "store",
        "--rate", "40", "--duration", "3", "--warmup", "0.5", "--drain", "30",
        "--processes", "1", "--events", "4", "--participants", "3",
    )  # fmt: skip
    verification = result["verification"]
    assert verification["ok"], verification
    assert verification["delivery_order"] == "store"
    assert verification["checked_deliveries"] == 12
    summary = result["summary"]
    assert summary["drops"] > 0, summary
    assert (summary["client_gaps"], summary["client_duplicates"]) == (0, 0), summary


def test_a_short_abuse_run_reports_each_attack_and_how_it_was_limited(tmp_path: Path) -> None:
    output, _, result = run_bench(
        tmp_path, "abuse", "--attacks", "typing,connections", "--duration", "2"
    )
    assert "victim p99" in output  # the live progress lines
    typing, connections = result["result"]
    assert typing["attack"] == "typing"
    assert typing["rss_growth_mib"] is not None
    assert typing["victim"]["answered"] > 0
    assert typing["victim"]["typing_frames"] <= 4  # about one a second, not one per toggle
    assert connections["attacker"]["closes"]["4429"] == 190
    assert connections["details"]["accepted"] == 10
