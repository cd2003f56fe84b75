"""``chat serve --workers N``: N gateway processes on one port, sharing one set of servers.

The parent starts what the workers must share — one embedded PostgreSQL, one embedded CQL
server and one private ``nats-server``, each only when none is configured — and passes their
addresses down as ``CHAT_*`` environment variables. Each worker is an ordinary ``chat serve``
that binds the port with ``SO_REUSEPORT``, so the kernel spreads connections across them and
NATS fans events out between them. A worker that dies is restarted, as process managers do:
after 1 s, doubling with each death in a row up to 30 s (its clients reconnect to the others
meanwhile). The parent stops everything when it is signalled.
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


RESTART_FIRST_SECONDS = 1.0
"""Wait before restarting a worker that died; doubled for each death in a row."""
RESTART_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0
"""A worker that ran this long before dying is restarted after the first wait again."""


class _Slot:
    """One worker place: its process and the back-off of its restarts."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.since = time.monotonic()
        self.deaths_in_a_row = 0
        self.restart_at: float | None = None

    def died(self, now: float) -> float:
        """The worker exited: when to start it again (returns the wait)."""
        if now - self.since >= STABLE_SECONDS:
            self.deaths_in_a_row = 0
        delay = min(RESTART_MAX_SECONDS, RESTART_FIRST_SECONDS * 2.0**self.deaths_in_a_row)
        self.deaths_in_a_row += 1
        self.restart_at = now + delay
        return delay

    def started(self, proc: asyncio.subprocess.Process, now: float) -> None:
        self.proc, self.since, self.restart_at = proc, now, None


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

        async def spawn() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chat.cli", "serve", env=child_env
            )

        slots = [_Slot(await spawn()) for _ in range(workers)]
        log.info("started %d workers on %s:%d", workers, settings.host, settings.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if stop.is_set():
                break
            now = time.monotonic()
            for index, slot in enumerate(slots):
                if slot.restart_at is None and slot.proc.returncode is not None:
                    delay = slot.died(now)
                    log.warning(
                        "worker %d (pid %d) exited with status %s; restarting it in %.0f s",
                        index,
                        slot.proc.pid,
                        slot.proc.returncode,
                        delay,
                    )
                elif slot.restart_at is not None and now >= slot.restart_at:
                    slot.started(await spawn(), now)
                    log.info("worker %d restarted (pid %d)", index, slot.proc.pid)
        procs = [s.proc for s in slots]
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
