"""Real servers for tests: uvicorn on port 0 in the test's event loop, as uvicorn's own tests do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from chat.gateway.transport import GatewayWebSocketProtocol


@contextlib.asynccontextmanager
async def run_server(app: ASGIApp, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on a free port; yields its base URL and shuts it down on exit."""
    config = uvicorn.Config(
        app,
        host=host,
        port=0,
        lifespan="on",
        log_level="warning",
        ws=GatewayWebSocketProtocol,
        proxy_headers=False,  # as `chat serve`: the app alone decides whose X-Forwarded-For counts
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises the start-up error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
