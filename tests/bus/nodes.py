"""Real gateway processes for the multi-node tests: ``chat serve`` subprocesses on free ports,
sharing the session's PostgreSQL and CQL server and one real ``nats-server``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from chat.config import Settings
from chat.embedded.nats import free_port, nats_server_binary

START_TIMEOUT = 60.0


@dataclass
class NatsServer:
    """A real nats-server that a test may stop and start again on the same port."""

    port: int
    process: subprocess.Popen[bytes] | None = None
    options: tuple[str, ...] = ()
    """More nats-server flags (authentication, TLS)."""

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a test fixture, started once
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), *self.options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def nats_server(*options: str) -> Iterator[NatsServer]:
    server = NatsServer(free_port(), options=options)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Node:
    """One ``chat serve`` process."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@contextlib.asynccontextmanager
async def gateway_node(settings: Settings, nats_url: str, log: Path) -> AsyncIterator[Node]:
    port = free_port()
    env = {
        **os.environ,
        "CHAT_PG_DSN": settings.pg_dsn or "",
        "CHAT_CQL_CONTACT_POINTS": settings.cql_contact_points or "",
        "CHAT_CQL_PORT": str(settings.cql_port),
        "CHAT_DATA_DIR": str(settings.data_dir),
        "CHAT_JWT_SECRET": settings.jwt_secret or "",
        "CHAT_AUTO_MIGRATE": "true",
        "CHAT_NATS_URL": nats_url,
        "CHAT_NATS_PRESENCE_HEARTBEAT_SECONDS": "0.3",
        "CHAT_NATS_PRESENCE_TTL_SECONDS": "1.5",
        "CHAT_PORT": str(port),
        "CHAT_LOG_LEVEL": "warning",
        "CHAT_WS_SEND_RATE_PER_SECOND": "1000",
        "CHAT_WS_SEND_BURST": "1000",
        "CHAT_WS_USER_SEND_RATE_PER_SECOND": "1000",
        "CHAT_WS_USER_SEND_BURST": "1000",
        "CHAT_WS_FRAME_RATE_PER_SECOND": "1000",
        "CHAT_WS_FRAME_BURST": "1000",
        # The tests sign up and call from one address: quotas no test reaches.
        "CHAT_REST_ADDRESS_QUOTA": "10000000",
        "CHAT_REST_USER_QUOTA": "10000000",
        "CHAT_REST_SIGNUP_QUOTA": "10000000",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: ASYNC220 - a test fixture, started once
            [sys.executable, "-m", "chat.cli", "serve"], env=env, stdout=out, stderr=out
        )
    node = Node(f"http://127.0.0.1:{port}", process)
    try:
        async with asyncio.timeout(START_TIMEOUT), httpx.AsyncClient() as http:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"chat serve exited ({process.returncode}); see {log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(node.url + "/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield node
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
