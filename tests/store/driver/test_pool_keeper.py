"""A session whose pool the driver shut while the host stayed up serves requests again.

The driver leaves exactly this state behind when a connection fails its heartbeat and the
cluster discounts the host's down event (another connection to it is still open): the pool is
shut, the host is up, and nothing replaces the pool. The test puts a real session in that state
through the driver's own ``HostConnection.shutdown`` and checks that requests come back.
"""

from __future__ import annotations

import asyncio

import pytest
from cassandra.cluster import NoHostAvailable

from chat.config import Settings
from chat.store.driver.pool_keeper import shut_pools_of_live_hosts
from chat.store.driver.session import CqlStore, open_cql
from tests.polling import until


async def _answers(store: CqlStore) -> bool:
    try:
        await store.ping()
    except NoHostAvailable:
        return False
    return True


async def test_a_pool_shut_while_its_host_is_up_is_renewed_and_requests_come_back(
    settings: Settings,
) -> None:
    async with open_cql(settings) as store:
        await store.ping()
        [pool] = list(store.session.get_pools())
        await asyncio.to_thread(pool.shutdown)
        assert shut_pools_of_live_hosts(store.session) == [str(pool.host.endpoint)]
        with pytest.raises(NoHostAvailable, match="Pool is shutdown"):
            await store.ping()

        await until(lambda: _answers(store), within=20, interval=0.2, what="a renewed pool")
        assert shut_pools_of_live_hosts(store.session) == []


async def test_a_session_with_working_pools_has_nothing_to_renew(cql_store: CqlStore) -> None:
    await cql_store.ping()
    assert shut_pools_of_live_hosts(cql_store.session) == []
