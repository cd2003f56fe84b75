"""A real ``chat serve`` process for the operations tests: started, probed, signalled.

It talks to the session's PostgreSQL and CQL server (``CHAT_PG_DSN`` and the contact points
from the fixtures) on a free port, logs to a file the test can read, and is polled — never
slept on — until ``/healthz`` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chat.config import Settings
from tests.api_client import TEST_JWT_SECRET
from tests.polling import until

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServeProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_exit(self, within: float) -> int:
        """The exit status; subprocess.TimeoutExpired if still running after ``within`` s."""
        code = await asyncio.to_thread(self.process.wait, within)
        return code


def serve_env(settings: Settings, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    assert settings.pg_dsn is not None
    assert settings.cql_contact_points is not None
    env.update(
        CHAT_PG_DSN=settings.pg_dsn,
        CHAT_CQL_CONTACT_POINTS=settings.cql_contact_points,
        CHAT_CQL_PORT=str(settings.cql_port),
        CHAT_JWT_SECRET=TEST_JWT_SECRET,
        CHAT_DATA_DIR=str(data_dir),
        CHAT_PORT=str(port),
        CHAT_HOST="127.0.0.1",
        CHAT_AUTO_MIGRATE="false",
        CHAT_WS_SEND_BURST="200",
        CHAT_WS_SEND_RATE_PER_SECOND="1000",
        CHAT_WS_USER_SEND_BURST="200",
        CHAT_WS_USER_SEND_RATE_PER_SECOND="1000",
        # The tests sign up and call from one address: quotas no test reaches.
        CHAT_REST_ADDRESS_QUOTA="10000000",
        CHAT_REST_USER_QUOTA="10000000",
        CHAT_REST_SIGNUP_QUOTA="10000000",
    )
    env.update(extra)
    return env


@contextlib.asynccontextmanager
async def serve_process(
    settings: Settings, tmp_path: Path, **extra_env: str
) -> AsyncIterator[ServeProcess]:
    """``chat serve`` as a subprocess; killed on exit if the test left it running."""
    port = free_port()
    env = serve_env(settings, tmp_path / "data", port, **extra_env)
    async with serve_with_env(env, port, tmp_path / "serve.log") as served:
        yield served


@contextlib.asynccontextmanager
async def serve_with_env(
    env: dict[str, str], port: int, log_path: Path, args: Sequence[str] = ()
) -> AsyncIterator[ServeProcess]:
    """``chat serve *args`` with exactly ``env``; the process group is killed if left running.

    The group, because ``chat serve --workers`` has children of its own: a test that fails
    half-way must not leave workers or private servers behind.
    """
    process = _spawn(env, log_path, args)
    served = ServeProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_healthy(served)
        yield served
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)


async def _wait_healthy(served: ServeProcess) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=2) as http:

        async def healthy() -> bool:
            if served.process.poll() is not None:
                raise RuntimeError(f"chat serve exited early:\n{served.log_text()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                return (await http.get("/healthz")).status_code == 200
            return False

        try:
            await until(healthy, within=START_TIMEOUT, interval=0.1, what="chat serve's health")
        except pytest.fail.Exception as failed:
            raise TimeoutError(f"{failed}\n{served.log_text()[-4000:]}") from None


def _spawn(env: dict[str, str], log_path: Path, args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start ``chat serve`` in its own process group (the caller polls it healthy)."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "chat.cli", "serve", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
