"""``python -m bench chaos``: a short fixed-seed run passes, and a seed is a replayable schedule.

The run is the real thing (docs in bench/README.md, "chaos"): two gateway nodes, a real
nats-server, the embedded CQL server and PostgreSQL, clients that follow docs/protocol.md, and
every kind of fault in one seeded schedule — then the store and every client's view checked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path

from bench.chaos.schedule import KINDS, fault_schedule

SEED = 1
"""A seed whose 30 s schedule holds every kind of fault (see the first test)."""


def test_a_seed_is_one_schedule_and_a_short_run_meets_every_kind_of_fault() -> None:
    schedule = fault_schedule(SEED, 30.0)
    assert schedule == fault_schedule(SEED, 30.0)
    assert fault_schedule(SEED + 1, 30.0) != schedule
    assert {f.kind for f in schedule} == set(KINDS)
    for earlier, later in itertools.pairwise(schedule):
        assert earlier.at + earlier.lasts < later.at  # one fault at a time
    assert schedule[-1].at < 0.85 * 30.0


def _result_file(results: Path) -> Path:
    (found,) = results.glob("*/result.json")
    return found


async def test_a_short_chaos_run_with_a_fixed_seed_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    # Run without blocking the event loop: the suite's shared servers live on it, and their
    # driver connections must keep answering heartbeats for the tests that follow.
    command = [sys.executable, "-m", "bench", "chaos", "--duration", "30", "--seed", str(SEED)]
    process = await asyncio.create_subprocess_exec(
        *command,
        "--results",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 600)
    text = out.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "verification ok" in text
    result = json.loads(_result_file(tmp_path).read_text())
    assert result["seed"] == SEED
    assert {f["kind"] for f in result["applied"]} == set(KINDS)
    assert result["totals"]["acked"] > 500
    assert result["views"]["checked_views"] == 18
