"""The app-loop reactor (``CHAT_CQL_REACTOR=app-loop``): connect, send, time out, shut down.

Why here and not only through the suite: these are the places where a driver running on the
application's loop could deadlock it (connect and shutdown wait on the loop from a worker
thread; timers and writes come from the loop itself).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest
from cassandra import OperationTimedOut

from chat.config import Settings
from chat.embedded.cql.process import EmbeddedCqlServer
from chat.store.driver.session import (
    connect_blocking,
    connection_class_for,
    execute_async,
    shutdown_cluster,
)


async def test_app_loop_reactor_serves_requests_on_the_loop_thread_and_shuts_down(
    settings: Settings, cql_server: EmbeddedCqlServer
) -> None:
    before = {t.name for t in threading.enumerate()}
    own = settings.model_copy(update={"cql_reactor": "app-loop"})
    cql = await asyncio.to_thread(
        connect_blocking,
        own,
        [cql_server.host],
        cql_server.port,
        connection_class=connection_class_for(own.cql_reactor),
    )
    try:
        assert "asyncio_thread" not in {t.name for t in threading.enumerate()} - before
        rows = await asyncio.gather(
            *(
                execute_async(cql.session, "SELECT release_version FROM system.local")
                for _ in range(50)
            )
        )
        assert all(len(r) == 1 for r in rows)
        prepared = await asyncio.to_thread(
            cql.session.prepare, "SELECT release_version FROM system.local"
        )
        assert len(await execute_async(cql.session, prepared)) == 1
        # A driver timer armed from the loop fires on it: a request the server cannot answer
        # (its process is stopped) times out. A tiny timeout against a running server raced
        # the answer, which sometimes came first.
        os.kill(cql_server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(OperationTimedOut):
                await execute_async(cql.session, "SELECT * FROM system.local", timeout=0.05)
        finally:
            os.kill(cql_server.pid, signal.SIGCONT)
    finally:
        await shutdown_cluster(cql.cluster)
    assert cql.cluster.is_shutdown


async def test_the_libev_reactor_setting_is_accepted_and_connects(
    settings: Settings, cql_server: EmbeddedCqlServer
) -> None:
    """``CHAT_CQL_REACTOR=libev`` keeps the driver's own I/O thread: still a working session."""
    own = Settings.model_validate({**settings.model_dump(), "cql_reactor": "libev"})
    assert connection_class_for(own.cql_reactor) is None  # the driver's default class
    cql = await asyncio.to_thread(
        connect_blocking, own, [cql_server.host], cql_server.port, connection_class=None
    )
    try:
        rows = await execute_async(cql.session, "SELECT release_version FROM system.local")
        assert len(rows) == 1
    finally:
        await shutdown_cluster(cql.cluster)
