"""The embedded CQL server's own figures, read from ``system.embedded_stats``.

What the app shows of the store it runs on when no ScyllaDB is configured: rows, bytes, the
memory budget and whether writes are being refused for it (``/metrics``), and a readiness
check that names the budget when it is the reason writes fail (``/readyz``). Only the
embedded server has the table: ScyllaDB answers the first read with "unconfigured table",
after which the reader stops asking and reports nothing.

Reads are shared: one at a time, its result reused for ``reuse_seconds``, so scrapes and
probes arriving together cost one query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cassandra import InvalidRequest

from chat.errors import ServiceUnavailable
from chat.store.driver.session import CqlStore, execute_async

STATS_QUERY = "SELECT name, value FROM system.embedded_stats"
READ_TIMEOUT_S = 2.0
REUSE_S = 1.0

FIGURES = (
    "store_rows",
    "store_bytes",
    "store_partitions",
    "store_memory_bytes",
    "memory_budget_bytes",
    "over_memory_budget",
    "writes_refused_overloaded",
    "expired_rows_forgotten",
    "process_rss_bytes",
)
"""The figures the app exposes (the table holds more: request and collector counters)."""


class OverMemoryBudget(ServiceUnavailable):
    """The embedded server refuses writes: its store is over its memory budget."""

    code = "over_memory_budget"
    title = "The embedded CQL store is over its memory budget"


class EmbeddedStats:
    """Reads the embedded server's figures; ``None`` where the server is not the embedded one."""

    def __init__(
        self,
        cql: CqlStore,
        reuse_seconds: float = REUSE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cql = cql
        self.reuse_seconds = reuse_seconds
        self.clock = clock
        self.available = True  # until the server says it has no such table
        self.last: dict[str, int] | None = None
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, int] | None:
        """The latest figures (at most ``reuse_seconds`` old); None on ScyllaDB.

        Raises what the driver raises when the server cannot be reached.
        """
        if not self.available:
            return None
        async with self._lock:
            if self.last is not None and self.clock() - self._read_at < self.reuse_seconds:
                return self.last
            try:
                rows = await asyncio.wait_for(
                    execute_async(self._cql.session, STATS_QUERY), READ_TIMEOUT_S
                )
            except InvalidRequest:  # "unconfigured table": not the embedded server
                self.available = False
                return None
            self.last = {row.name: int(row.value) for row in rows if row.name in FIGURES}
            self._read_at = self.clock()
            return self.last

    async def check_memory_budget(self) -> None:
        """A readiness check: raises :class:`OverMemoryBudget` while writes are refused."""
        figures = await self.read()
        if figures is not None and figures.get("over_memory_budget"):
            raise OverMemoryBudget(
                f"the embedded CQL store holds {figures.get('store_memory_bytes', 0)} bytes, "
                f"over its budget of {figures.get('memory_budget_bytes', 0)}"
            )
