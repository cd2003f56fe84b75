"""The web console: static files served at ``/console/``, and the service's front page at ``/``.

The console is plain HTML, CSS and JavaScript modules shipped in the package (``static/``):
nothing is built, and its WebSocket client (``static/chat-client.js``) is the reference
JavaScript client. Every response carries a Content-Security-Policy that allows only this
origin, so the console runs no script and opens no connection elsewhere.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS: dict[str, str] = {
    "content-security-policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}

_HOME = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>timingle chat</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/console.css">
</head>
<body class="home">
<main>
<h1>timingle chat</h1>
<p>The real-time chat service of timingle events.</p>
<ul>
<li><a href="/console/">Web console</a>: sign up, create events, chat.</li>
<li><a href="/v1/openapi.json">REST API</a> (OpenAPI 3.1)</li>
<li><a href="/v1/asyncapi.json">WebSocket protocol</a> (AsyncAPI 3.0) at <code>/v1/ws</code></li>
<li><a href="/readyz">Readiness</a> and <a href="/metrics">metrics</a></li>
</ul>
</main>
</body>
</html>
"""


class _WithHeaders:
    """Adds fixed headers to every response of the wrapped ASGI app."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.raw = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def home(request: Request) -> Response:
    return HTMLResponse(_HOME, headers=SECURITY_HEADERS)


def console_routes() -> list[BaseRoute]:
    """``/`` (links to everything) and ``/console/`` (the console's files)."""
    files = StaticFiles(directory=STATIC_DIR, html=True)
    return [
        Route("/", home, methods=["GET"]),
        Mount("/console", app=_WithHeaders(files, SECURITY_HEADERS), name="console"),
    ]
