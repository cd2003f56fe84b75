"""``chat serve --workers 2``: one port, two processes, one private NATS, a clean SIGTERM.

The parent is a real subprocess. The test checks what an operator relies on: the kernel
spreads connections over both workers (``SO_REUSEPORT``; each worker's established sockets are
read with psutil), a message sent through one worker reaches subscribers on both, and SIGTERM
to the parent drains every worker (clients closed with 1001, exit 0 within the drain deadline)
and stops every server the parent started — no ``nats-server``, PostgreSQL or CQL process
outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import ConnectionClosed

from chat.auth import TokenService
from chat.config import Settings
from tests.api_client import TEST_JWT_SECRET, Api
from tests.gateway.live import TIMEOUT, WsClient, client, is_message, users_and_event
from tests.ops.processes import ServeProcess, free_port, serve_env, serve_with_env
from tests.polling import until

WORKERS = 2
DRAIN_SECONDS = 6
MAX_CLIENTS = 40
"""Connections opened at most while waiting for the kernel to use both workers."""
STARTUP_TIMEOUT = 90.0


def workers_of(served: ServeProcess) -> list[psutil.Process]:
    """The parent's living ``chat serve`` children (not the servers it started, nor a killed
    worker the parent has not reaped yet)."""
    workers = []
    for child in psutil.Process(served.process.pid).children():
        with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):
            if "chat.cli" in " ".join(child.cmdline()):
                workers.append(child)
    return workers


def established(worker: psutil.Process, port: int) -> int:
    """How many client connections this worker holds on the shared port."""
    return sum(
        1
        for c in worker.net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def wait_listening(served: ServeProcess, port: int) -> list[psutil.Process]:
    """Both workers are up and have bound the port (``/healthz`` answers with one of them)."""

    def listening() -> list[psutil.Process] | None:
        assert served.process.poll() is None, served.log_text()[-4000:]
        bound = [
            w
            for w in workers_of(served)
            if any(
                c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in w.net_connections(kind="tcp")
            )
        ]
        return bound if len(bound) == WORKERS else None

    found: list[psutil.Process] = await until(
        listening, within=STARTUP_TIMEOUT, interval=0.1, what=f"{WORKERS} workers listening"
    )
    return found


def started_by(served: ServeProcess, data_dir: Path) -> list[psutil.Process]:
    """Every process the parent started: its descendants, and any process working in its
    data directory (PostgreSQL daemonizes, so it is nobody's child)."""
    found = {p.pid: p for p in psutil.Process(served.process.pid).children(recursive=True)}
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(data_dir) in " ".join(proc.info["cmdline"] or ()):
                found.setdefault(proc.pid, proc)
    return list(found.values())


def names(procs: list[psutil.Process]) -> str:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            out.append(" ".join(proc.cmdline()))
    return " | ".join(out)


async def close_code(ws: WsClient) -> int | None:
    """Read until the server closes the connection; the close code it sent."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS + TIMEOUT):
            while True:
                await ws.ws.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None


async def exercise_workers(
    served: ServeProcess, port: int, api: Api, data_dir: Path, servers: tuple[str, ...]
) -> None:
    """Spread clients over both workers, fan a message out to all, SIGTERM, check cleanup.

    ``servers``: words naming the processes the parent must have started (and then stop).
    """
    workers = await wait_listening(served, port)
    users, event_id = await users_and_event(api, 4)
    async with contextlib.AsyncExitStack() as stack:
        clients: list[WsClient] = []
        while len(clients) < MAX_CLIENTS:
            user = users[len(clients) % len(users)]
            ws = await stack.enter_async_context(client(served.url, api, user))
            await ws.subscribe_when_ready(event_id)
            clients.append(ws)
            if len(clients) >= 4 and all(established(w, port) for w in workers):
                break
        per_worker = {w.pid: established(w, port) for w in workers}
        assert all(per_worker.values()), f"one worker served no connection: {per_worker}"

        ack = await clients[0].send_message(event_id, "to every worker")
        for ws in clients:
            got = await ws.expect(is_message(event_id))
            assert got["message"]["message_id"] == ack["message_id"]

        descendants = started_by(served, data_dir)
        running = names(descendants)
        for server in servers:
            assert server in running, f"no {server} among {running}"
        signalled = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(ws) for ws in clients))
        status = await served.wait_exit(DRAIN_SECONDS + 10)
        elapsed = time.monotonic() - signalled

    assert codes == [1001] * len(clients), codes
    assert status == 0, served.log_text()[-4000:]
    assert elapsed < DRAIN_SECONDS + 5, elapsed
    _, alive = psutil.wait_procs(descendants, timeout=5)
    assert not alive, f"left running after the parent exited: {names(alive)}"
    log = served.log_text()
    assert "lost NATS" not in log, log[-4000:]


async def test_two_workers_share_the_port_fan_out_and_drain_on_sigterm(
    settings: Settings, api: Api, tmp_path: Path
) -> None:
    """With the session's PostgreSQL and CQL configured, the parent adds only a nats-server."""
    port = free_port()
    env = serve_env(
        settings,
        tmp_path / "data",
        port,
        CHAT_DRAIN_SECONDS=str(DRAIN_SECONDS),
        CHAT_LOG_LEVEL="info",
    )
    async with serve_with_env(env, port, tmp_path / "serve.log", ["--workers", "2"]) as served:
        await exercise_workers(served, port, api, tmp_path / "data", ("nats-server",))


@contextlib.asynccontextmanager
async def worker_api(url: str, tokens: TokenService) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield Api(http, tokens)


async def test_unconfigured_workers_start_and_stop_their_own_databases_and_nats(
    tokens: TokenService, tmp_path: Path
) -> None:
    """Nothing configured: the parent starts embedded PostgreSQL + CQL + nats-server, and
    stops all three when it exits."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(
        CHAT_DATA_DIR=str(tmp_path / "data"),
        CHAT_PORT=str(port),
        CHAT_HOST="127.0.0.1",
        CHAT_CQL_PORT=str(free_port()),
        CHAT_JWT_SECRET=TEST_JWT_SECRET,
        CHAT_DRAIN_SECONDS=str(DRAIN_SECONDS),
        CHAT_LOG_LEVEL="info",
    )
    async with (
        serve_with_env(env, port, tmp_path / "serve.log", ["--workers", "2"]) as served,
        worker_api(served.url, tokens) as api,
    ):
        await exercise_workers(
            served,
            port,
            api,
            tmp_path / "data",
            ("nats-server", "bin/postgres", "chat.embedded.cql"),
        )


def listening_workers(served: ServeProcess, port: int) -> list[psutil.Process]:
    """The parent's workers that have bound the shared port right now."""
    found = []
    for worker in workers_of(served):
        with contextlib.suppress(psutil.Error):
            if any(
                c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in worker.net_connections(kind="tcp")
            ):
                found.append(worker)
    return found


@pytest.mark.usefixtures("base_url")
async def test_a_worker_that_dies_is_restarted_with_back_off_and_the_port_keeps_serving(
    settings: Settings, tmp_path: Path
) -> None:
    """The workers use the session's PostgreSQL and CQL server, whose schema the session's app
    created at its start (against configured databases, workers migrate only when told to)."""
    port = free_port()
    env = serve_env(settings, tmp_path / "data", port, CHAT_LOG_LEVEL="info")
    async with serve_with_env(env, port, tmp_path / "serve.log", ["--workers", "2"]) as served:
        first = await wait_listening(served, port)
        victim = first[0]
        victim.kill()
        replaced = await until(
            lambda: (
                len(listening_workers(served, port)) == WORKERS
                and victim.pid not in {w.pid for w in listening_workers(served, port)}
                and listening_workers(served, port)
            ),
            within=STARTUP_TIMEOUT,
            what="the dead worker's replacement to listen",
        )
        assert {w.pid for w in replaced} != {w.pid for w in first}
        assert served.process.poll() is None
        async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
            ready = await until(
                lambda: _ready(http), within=STARTUP_TIMEOUT, what="the workers to be ready"
            )
            assert ready
        log = served.log_text()
        assert "restarting it in 1 s" in log, log[-3000:]
        assert "worker 0 restarted" in log or "worker 1 restarted" in log, log[-3000:]


async def _ready(http: httpx.AsyncClient) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await http.get("/readyz")).status_code == 200
    return False
