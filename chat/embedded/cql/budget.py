"""The embedded server's memory budget: how much stored data it takes before refusing writes.

Everything the server stores lives in its memory (the commit log and snapshots only make it
durable), so without a bound it grows until the kernel kills it. The budget bounds the
store's own estimate of its data (:attr:`~storage.StoreUsage.memory`: the rows' bytes plus
a per-row and per-partition overhead, which tracks the process's RSS growth — see
``bench/README.md``). Past it, writes that add data are refused with ScyllaDB's Overloaded
error; reads, deletions and TTL expiry go on and bring the store back under it.

A budget is written as bytes (``536870912``), with a unit (``512MiB``, ``2GB``, ``1.5GiB``)
or as a share of the machine's memory (``25%``) — of the physical memory, or of the
container's cgroup limit when that is lower.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BUDGET = "25%"
"""A quarter of the memory: room for the application, PostgreSQL and the page cache beside it."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


class BudgetError(ValueError):
    """A memory budget that cannot be read; the message says what is accepted."""


def machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a lower cgroup limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def parse_budget(text: str, total: int | None = None) -> int:
    """Bytes from ``25%``, ``512MiB``, ``2GB`` or a plain number of bytes.

    ``total``: what a percentage is of (default: :func:`machine_memory`).
    """
    cleaned = text.strip().lower().replace(" ", "").replace("_", "")
    try:
        if cleaned.endswith("%"):
            share = float(cleaned[:-1])
            if not 0 < share <= 100:
                raise BudgetError(f"a memory budget share must be in (0, 100]%, not {text!r}")
            return int((machine_memory() if total is None else total) * share / 100)
        number = cleaned.rstrip("kmgtib")
        unit = cleaned[len(number) :]
        if unit not in _UNITS:
            raise BudgetError(f"unknown unit {unit!r} in memory budget {text!r}")
        value = int(float(number) * _UNITS[unit])
    except BudgetError:
        raise
    except (ValueError, OverflowError) as exc:  # not a number, or not a finite one
        raise BudgetError(
            f"memory budget {text!r}: expected bytes (536870912), a size (512MiB, 2GB) or a "
            "share of the machine's memory (25%)"
        ) from exc
    if value <= 0:
        raise BudgetError(f"a memory budget must be positive, not {text!r}")
    return value


def format_bytes(n: int) -> str:
    """``1.5 GiB``: for log lines and messages."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
