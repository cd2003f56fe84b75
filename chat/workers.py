"""``chat serve --workers N``: N gateway processes on one port, sharing one set of servers.

The parent starts what the workers must share — one embedded PostgreSQL, one embedded CQL
server and one private ``nats-server``, each only when none is configured — and passes their
addresses down as ``CHAT_*`` environment variables. Each worker is an ordinary ``chat serve``
that binds the port with ``SO_REUSEPORT``, so the kernel spreads connections across them and
NATS fans events out between them. A worker that dies is not restarted (its clients reconnect
to the others); the parent stops everything when it is signalled or when every worker is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator

from chat.config import Settings

log = logging.getLogger(__name__)

REUSE_PORT_ENV = "CHAT_WORKER_REUSE_PORT"
"""Set for the workers: bind the port with SO_REUSEPORT (several processes share it)."""


@contextlib.asynccontextmanager
async def _shared_databases(settings: Settings) -> AsyncIterator[dict[str, str]]:
    env: dict[str, str] = {}
    settings.secure_data_dir()
    async with contextlib.AsyncExitStack() as stack:
        if settings.pg_dsn is None:
            from chat.embedded.postgres import embedded_postgres

            env["CHAT_PG_DSN"] = await stack.enter_async_context(
                embedded_postgres(settings.data_dir / "postgres")
            )
            env.setdefault("CHAT_AUTO_MIGRATE", "true")
        if settings.cql_is_embedded:
            from chat.embedded.cql.process import EmbeddedCqlServer

            cql = await stack.enter_async_context(
                EmbeddedCqlServer(
                    data_dir=settings.data_dir / "cql",
                    port=settings.cql_port,
                    memory_budget=settings.cql_embedded_memory_budget,
                )
            )
            log.info("embedded CQL server listening on %s:%d", cql.host, cql.port)
            env["CHAT_CQL_CONTACT_POINTS"] = cql.host
            env["CHAT_CQL_PORT"] = str(cql.port)
            env["CHAT_CQL_AUTO_MIGRATE"] = "true"
        yield env


@contextlib.contextmanager
def _nats(settings: Settings) -> Iterator[str]:
    if settings.nats_url:
        yield settings.nats_url
        return
    from chat.embedded.nats import embedded_nats

    with embedded_nats() as url:
        yield url


def serve_workers(settings: Settings, workers: int) -> int:
    """Run ``workers`` ``chat serve`` processes until signalled; the exit status of the run."""
    with _nats(settings) as nats_url:
        return asyncio.run(_supervise(settings, workers, nats_url))


async def _supervise(settings: Settings, workers: int, nats_url: str) -> int:
    async with _shared_databases(settings) as env:
        child_env = {
            **os.environ,
            **env,
            "CHAT_NATS_URL": nats_url,
            "CHAT_HOST": settings.host,
            "CHAT_PORT": str(settings.port),
            "CHAT_DATA_DIR": str(settings.data_dir),
            REUSE_PORT_ENV: "1",
        }
        # Generate the shared secrets once, before the workers race to (they agree anyway).
        settings.resolved_jwt_secret()
        settings.resolved_oauth_key()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chat.cli", "serve", env=child_env
            )
            for _ in range(workers)
        ]
        log.info("started %d workers on %s:%d", workers, settings.host, settings.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set() and any(p.returncode is None for p in procs):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + settings.drain_seconds + 10
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return 0
