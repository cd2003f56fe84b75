"""Which exceptions mean "a dependency is down", not "this request is wrong".

The REST API answers them with 503 and the gateway with ``error unavailable``: both sides ask
this one tuple, so a database outage reads the same to every client.
"""

from __future__ import annotations

import asyncpg
from cassandra import DriverException, RequestExecutionException
from cassandra.cluster import NoHostAvailable

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    # PostgreSQL: lost or refused connections, and a server shutting down or starting up.
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    # CQL: every host down (not a DriverException), timeouts, unavailable replicas.
    NoHostAvailable,
    DriverException,
    RequestExecutionException,
)
