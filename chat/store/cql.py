"""The CQL session: ScyllaDB when contact points are configured, else the embedded CQL server.

The driver runs its own I/O thread and reports results through ``ResponseFuture`` callbacks;
:func:`execute_async` is the one bridge from those callbacks into asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster, ExecutionProfile, ResponseFuture, Session
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

from chat.config import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CqlStore:
    """A connected driver session and the cluster that owns it."""

    cluster: Cluster
    session: Session

    async def ping(self) -> None:
        await execute_async(self.session, "SELECT release_version FROM system.local")


def execute_async(
    session: Session, statement: Any, parameters: Sequence[Any] | None = None, **kwargs: Any
) -> asyncio.Future[list[Any]]:
    """Run a statement on the driver; the asyncio future resolves to all rows of every page.

    Callbacks arrive on the driver's I/O thread, so results cross into the loop with
    ``call_soon_threadsafe``. A cancelled asyncio future simply drops the late result; the
    driver's request itself cannot be withdrawn once sent.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[list[Any]] = loop.create_future()
    response: ResponseFuture = session.execute_async(statement, parameters, **kwargs)
    rows: list[Any] = []

    def deliver(value: list[Any]) -> None:
        if not result.done():
            result.set_result(value)

    def fail(exc: BaseException) -> None:
        if not result.done():
            result.set_exception(exc)

    def on_page(page: list[Any] | None) -> None:
        if page:
            rows.extend(page)
        if response.has_more_pages:
            response.start_fetching_next_page()
        else:
            loop.call_soon_threadsafe(deliver, rows)

    def on_error(exc: BaseException) -> None:
        loop.call_soon_threadsafe(fail, exc)

    response.add_callbacks(on_page, on_error)
    return result


def _connect_blocking(contact_points: list[str], port: int) -> CqlStore:
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM,
        request_timeout=10.0,
    )
    cluster = Cluster(
        contact_points,
        port=port,
        execution_profiles={"default": profile},
        protocol_version=4,
    )
    return CqlStore(cluster, cluster.connect())


@contextlib.asynccontextmanager
async def open_cql(settings: Settings) -> AsyncIterator[CqlStore]:
    """Connect to the configured cluster, or start the embedded CQL server and connect to it."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.cql_contact_points:
            hosts = [h.strip() for h in settings.cql_contact_points.split(",") if h.strip()]
            port = settings.cql_port
        else:
            from chat.embedded.cql.process import EmbeddedCqlServer

            embedded = EmbeddedCqlServer(data_dir=settings.data_dir / "cql", port=settings.cql_port)
            await stack.enter_async_context(embedded)
            hosts, port = [embedded.host], embedded.port
            log.info("embedded CQL server listening on %s:%d", embedded.host, embedded.port)
        store = await asyncio.to_thread(_connect_blocking, hosts, port)
        stack.callback(store.cluster.shutdown)
        log.info("CQL session connected to %s port %d", ",".join(hosts), port)
        yield store
