"""Keeps a connection pool for every CQL host the driver believes is up.

Why: when a connection fails its heartbeat (a node stalled for half a minute, a network hiccup)
the driver shuts that host's pool down and asks the cluster to mark the host down. The cluster
declines when it still holds another connection to the host (the control connection
reconnected first), and then nothing ever replaces the shut pool: the host stays "up", every
request fails with ``NoHostAvailable(... 'Pool is shutdown')``, and the gateway answers
``unavailable`` until it is restarted (scylladb/python-driver#1027). The keeper looks every
``interval`` seconds and has the session renew any shut pool of a host that is up, through the
driver's own ``Session.update_created_pools``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from cassandra.cluster import Session

log = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
"""How long a shut pool may stay unreplaced: requests in that window fail as retryable."""


def shut_pools_of_live_hosts(session: Session) -> list[str]:
    """The hosts not known to be down whose pool the session keeps, shut."""
    return [
        str(pool.host.endpoint)
        for pool in list(session.get_pools())
        if pool.is_shutdown and pool.host.is_up is not False
    ]


async def renew_shut_pools(session: Session) -> list[str]:
    """Renew the pools :func:`shut_pools_of_live_hosts` finds; returns their hosts.

    The renewal opens connections in the driver's executor threads, as its own reconnection
    does (never on the event loop, which the app-loop reactor needs free to serve them)."""
    hosts = shut_pools_of_live_hosts(session)
    if hosts:
        log.warning("CQL connection pool of %s is shut while the host is up: renewing it", hosts)
        futures = await asyncio.to_thread(session.update_created_pools)
        for future in futures:
            await asyncio.wrap_future(future)
    return hosts


@contextlib.asynccontextmanager
async def pools_kept(session: Session, interval: float = CHECK_SECONDS) -> AsyncIterator[None]:
    """Run the keeper for as long as the context is open."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await renew_shut_pools(session)
            except Exception:
                log.exception("renewing the CQL connection pools failed; trying again")

    task = asyncio.create_task(keep(), name="cql-pool-keeper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
