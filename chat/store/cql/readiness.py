"""The store half of ``/readyz``: a synthetic write and read-back through CQL.

A ``SELECT`` from ``system.local`` only proves a socket; a node whose replicas cannot take a
write at the configured consistency would still pass it while every send fails. The probe
writes a fresh token into this node's row of ``readiness_probes`` (TTL'd, see
``cql/000008_readiness.cql``) and reads it back, both at the app's consistency level (the
driver's default execution profile), so a ready answer means a send would be durable and
readable now.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import UTC, datetime

from cassandra.query import PreparedStatement

from chat.config import Settings
from chat.errors import ServiceUnavailable
from chat.store.driver.session import CqlStore, execute_async


class ReadinessProbeFailed(ServiceUnavailable):
    code = "readiness_probe_failed"
    title = "Readiness probe failed"


class CqlReadinessProbe:
    """Write then read back one row per node; prepared lazily on the first probe."""

    def __init__(self, cql: CqlStore, settings: Settings, node: str | None = None) -> None:
        self._cql = cql
        self._ks = settings.cql_keyspace
        # One row per process: workers sharing a port must not overwrite each other's token.
        self.node = node or f"{socket.gethostname()}:{settings.port}:{os.getpid()}"
        self._write: PreparedStatement | None = None
        self._read: PreparedStatement | None = None
        # Concurrent probes would overwrite each other's token in the one row of this node.
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Round trip one token; ReadinessProbeFailed when the read does not see the write."""
        async with self._lock:
            await self._round_trip()

    async def _round_trip(self) -> None:
        if self._write is None or self._read is None:
            self._write = await self._cql.prepare(
                f"INSERT INTO {self._ks}.readiness_probes (node, token, written_at) "
                "VALUES (?, ?, ?)",
                idempotent=True,
            )
            self._read = await self._cql.prepare(
                f"SELECT token FROM {self._ks}.readiness_probes WHERE node = ?", idempotent=True
            )
        token = uuid.uuid4()
        session = self._cql.session
        await execute_async(session, self._write, (self.node, token, datetime.now(UTC)))
        rows = await execute_async(session, self._read, (self.node,))
        if not rows or rows[0].token != token:
            raise ReadinessProbeFailed(
                "the CQL read did not return the probe just written; check CHAT_CQL_CONSISTENCY "
                "and the replicas' health"
            )
