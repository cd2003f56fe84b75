"""What the code under test asked the CQL server for, read from the server's own counters."""

from __future__ import annotations

from chat.store.driver.session import CqlStore, execute_async


class ServerReads:
    """The CQL server's read counters (``system.embedded_stats``), per table of the keyspace.

    Tests run one at a time against the session's server, so the difference between two
    snapshots is what the code under test asked for.
    """

    def __init__(self, cql: CqlStore, keyspace: str) -> None:
        self._cql = cql
        self._prefix = f"selects:{keyspace}."
        self._start: dict[str, int] = {}

    async def _snapshot(self, *, counting_itself: bool) -> dict[str, int]:
        query = "SELECT name, value FROM system.embedded_stats"
        rows = await execute_async(self._cql.session, query)
        stats = {r.name: r.value for r in rows}
        out = {k[len(self._prefix) :]: v for k, v in stats.items() if k.startswith(self._prefix)}
        # The server adds a read's rows to the counter after the read: the first snapshot's
        # own rows show up in the second one's counter.
        out["rows_read"] = stats["rows_read"] + (len(rows) if counting_itself else 0)
        return out

    async def start(self) -> None:
        self._start = await self._snapshot(counting_itself=True)

    async def since_start(self) -> dict[str, int]:
        """Reads per table, and rows read (``rows_read``), since :meth:`start`."""
        now = await self._snapshot(counting_itself=False)
        return {k: v - self._start.get(k, 0) for k, v in now.items() if v != self._start.get(k, 0)}
