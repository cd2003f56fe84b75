"""The real harness end to end, tiny and short, so the bench cannot rot.

Each run starts its own gateway subprocess (embedded PostgreSQL and CQL) and generator
processes for a couple of seconds, verifies what it read or wrote, and writes its result
files. Nothing about throughput or latency is asserted — only that the run completes,
verifies and reports.

The runs are awaited, not waited for blocking: the app the other tests share runs on this
test's event loop (its CQL driver too), and a loop that stops for longer than the driver's
heartbeat loses its CQL connections.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN_DEADLINE = 300.0  # seconds; a tiny run takes well under a minute on a loaded machine


async def run_bench(*arguments: str) -> str:
    """Runs ``python -m bench <arguments>``; its output (stdout and stderr) once it succeeded."""
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench", *arguments, cwd=ROOT, stdout=PIPE, stderr=STDOUT
    )
    try:
        async with asyncio.timeout(RUN_DEADLINE):
            output, _ = await run.communicate()
    except TimeoutError:
        run.kill()
        await run.wait()
        raise
    text = output.decode(errors="replace")
    assert run.returncode == 0, text
    return text


def written_result(results: Path) -> tuple[Path, Any]:
    """The one run directory under ``results`` and its parsed ``result.json``."""
    (directory,) = results.iterdir()
    return directory, json.loads((directory / "result.json").read_text())


async def test_a_tiny_open_loop_run_verifies_and_writes_its_results(tmp_path: Path) -> None:
    await run_bench(
        "write-load",
        "--rate", "40", "--duration", "2", "--warmup", "0.5", "--drain", "10",
        "--processes", "2", "--events", "4", "--participants", "3",
        "--results", str(tmp_path),
    )  # fmt: skip
    directory, result = written_result(tmp_path)
    assert result["verification"]["ok"]
    assert result["verification"]["checked_messages"] > 0
    assert result["summary"]["errors"] == {}
    assert (directory / "summary.md").exists()
    assert (directory / "plot.png").exists()


async def test_a_tiny_mixed_run_checks_its_pages_and_writes_its_results(tmp_path: Path) -> None:
    await run_bench(
        "mixed",
        "--duration", "2", "--warmup", "0.5", "--drain", "10",
        "--events", "3", "--writers", "2", "--readers", "1", "--quiet-events", "1",
        "--history", "20", "--quiet-history", "20", "--write-rate", "20",
        "--read-rate", "10", "--store-read-rate", "10", "--writer-processes", "1",
        "--storm-subscribers", "20", "--results", str(tmp_path),
    )  # fmt: skip
    directory, result = written_result(tmp_path)
    assert result["verification"]["ok"]
    assert result["verification"]["checked_pages"] > 0
    assert result["storm"]["resumed"] == 20
    assert any(name.startswith("store:") for name in result["reads"])
    assert (directory / "plot.png").exists()


async def test_a_short_abuse_run_reports_each_attack_and_how_it_was_limited(tmp_path: Path) -> None:
    output = await run_bench(
        "abuse",
        "--attacks", "typing,connections", "--duration", "2",
        "--results", str(tmp_path),
    )  # fmt: skip
    assert "victim p99" in output  # the live progress lines
    _, result = written_result(tmp_path)
    typing, connections = result["result"]
    assert typing["attack"] == "typing"
    assert typing["rss_growth_mib"] is not None
    assert typing["victim"]["answered"] > 0
    assert typing["victim"]["typing_frames"] <= 4  # about one a second, not one per toggle
    assert connections["attacker"]["closes"]["4429"] == 190
    assert connections["details"]["accepted"] == 10
