"""The code standards hold: ruff (lint and format) and mypy --strict over the whole tree, and
the tracked files speak of the code, not of how it was made."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ["chat", "tests", "bench"]


async def _run(*args: str) -> tuple[int, str]:
    """Exit status and output of ``python -m <args>`` in the repository.

    Awaited, not run blocking: mypy takes a while, and the suite's shared servers live on the
    event loop (their driver connections must keep answering heartbeats meanwhile)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_ruff_finds_no_lint_errors() -> None:
    code, output = await _run("ruff", "check", *TREES)
    assert code == 0, output


async def test_ruff_format_leaves_every_file_unchanged() -> None:
    code, output = await _run("ruff", "format", "--check", *TREES)
    assert code == 0, output


async def test_mypy_strict_passes() -> None:
    code, output = await _run("mypy")
    assert code == 0, output


HISTORY_MARKERS = {
    "an issue number": re.compile(r"\bissues?\s*#?\d+\b", re.IGNORECASE),
    "an absolute path outside the repository": re.compile(r"(?<![\w.~])/(?:work|home)/"),
    "a work package's name": re.compile(r"\bH\d+[a-z]\b"),
    "a document the reader does not have": re.compile(
        r"shared[/]reference|\breference (?:query|design)\b", re.IGNORECASE
    ),
    "a review": re.compile(r"\breview[ _](?:fix|finding)", re.IGNORECASE),
}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    paths = [ROOT / name for name in listed.split("\0") if name]
    return [p for p in paths if p.is_file() and b"\0" not in p.read_bytes()[:8192]]


def test_tracked_files_carry_no_marks_of_how_the_code_was_made() -> None:
    """Issue numbers, work-package names, review notes and paths on a developer's machine mean
    nothing to a reader of the repository; say what the code does instead."""
    found = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in HISTORY_MARKERS.items():
                if match := pattern.search(line):
                    where = f"{path.relative_to(ROOT)}:{number}"
                    found.append(f"{where}: {what} ({match.group(0)!r})")
    assert not found, "\n".join(found)
