"""A request id for every HTTP request and WebSocket upgrade, in the logs and the response.

An id sent by the client or a proxy in ``X-Request-ID`` is kept when it is well-formed (1 to 128
characters of ``A-Z a-z 0-9 . _ : -``), so one id follows a request through the load balancer
and this service; anything else is replaced by a fresh one, so a client cannot inject log
syntax. HTTP responses carry the id back in ``X-Request-ID``.

A pure ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: it does not buffer
streamed bodies and it sees WebSocket scopes too.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat.logs import bind_request_id, request_id_var

HEADER = b"x-request-id"
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The incoming ``X-Request-ID`` when well-formed, else a new random id."""
    for name, value in headers:
        if name.lower() == HEADER and _WELL_FORMED.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds the request id for the request's context and echoes it in the response headers.

    The binding is undone when the request completes normally. When the app raises, it stays
    bound, so the server's "Exception in ASGI application" record still carries the id; each
    request runs in its own task, so it never leaks into the next one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        token = bind_request_id(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                headers.append((HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)
        request_id_var.reset(token)
