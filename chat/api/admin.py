"""The admin listener: ``/metrics`` and the probes on a port of their own (``CHAT_ADMIN_PORT``).

Why a second port: metrics name internal counters and the probes cost database work, so an
operator keeps them off the public listener and lets only the scraper and the orchestrator
reach this one. It serves the same :class:`~chat.state.AppState` as the main app (one registry,
one shared readiness probe) and belongs to the main app's lifespan: it starts once the state
exists and stops before the state closes. ``/metrics`` is then no longer served on
``CHAT_PORT``; the probes stay there too, for load balancers that can only probe the traffic
port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chat.api.health import healthz, metrics, readyz
from chat.api.problems import EXCEPTION_HANDLERS
from chat.api.request_ids import RequestIdMiddleware
from chat.state import AppState

log = logging.getLogger(__name__)

ADMIN_ROUTES: list[Route] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
STOP_TIMEOUT_S = 5.0


class _WithState:
    """Hands every request the main app's state, as the main app's lifespan does for its own."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["state"] = {"app": self.state}
        await self.app(scope, receive, send)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the main server owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def admin_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """The listening socket; shared by the workers of ``chat serve --workers`` (SO_REUSEPORT)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


@contextlib.asynccontextmanager
async def admin_listener(state: AppState) -> AsyncIterator[str | None]:
    """Serve the admin routes on ``CHAT_ADMIN_PORT`` while the context is open.

    Yields the listener's base URL, or None (and serves nothing) when no admin port is set.
    """
    settings = state.settings
    if settings.admin_port is None:
        yield None
        return
    from chat.workers import REUSE_PORT_ENV

    host = settings.admin_host or settings.host
    sock = admin_socket(host, settings.admin_port, reuse_port=bool(os.environ.get(REUSE_PORT_ENV)))
    app = Starlette(
        routes=ADMIN_ROUTES,
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[Middleware(RequestIdMiddleware)],
    )
    config = uvicorn.Config(
        _WithState(app, state),
        lifespan="off",
        proxy_headers=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=1,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="admin-listener")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the admin listener stopped before it started")
            await asyncio.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}"
        log.info("admin listener (metrics, probes) on %s", url)
        yield url
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        finally:
            sock.close()
