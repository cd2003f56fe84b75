"""Real servers for tests: uvicorn on port 0 in the test's event loop, as uvicorn's own tests do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from chat.gateway.transport import GatewayWebSocketProtocol
from tests.polling import until


@contextlib.asynccontextmanager
async def run_server(app: ASGIApp, host: str = "127.0.0.1", **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port; yields its base URL and shuts it down on exit.

    ``options`` are further ``uvicorn.Config`` settings (a log configuration, a log level)."""
    settings: dict[str, Any] = {
        "lifespan": "on",
        "log_level": "warning",
        "ws": GatewayWebSocketProtocol,
        # As `chat serve`: the app alone decides whose X-Forwarded-For counts.
        "proxy_headers": False,
    }
    config = uvicorn.Config(app, host=host, port=0, **(settings | options))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), interval=0.01, what="uvicorn to start")
        if not server.started:
            task.result()  # raises the start-up error
            raise RuntimeError("uvicorn stopped before it started")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
