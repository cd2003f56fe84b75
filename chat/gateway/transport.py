"""The uvicorn WebSocket protocol the gateway runs on: bounded buffers and graceful shutdown.

uvicorn's ``websockets-sansio`` protocol is a good adapter, but two of its defaults defeat the
gateway's guarantees, so ``chat serve`` (and the tests' ``run_server``) use this subclass:

- **Backpressure.** Its ``send`` waits only while the asyncio transport is paused, and the
  transport pauses only once the *kernel* send buffer is full — which Linux auto-tunes to
  megabytes. A phone that stops reading would then swallow thousands of frames before the
  gateway's bounded mailbox saw any of it, and "too slow" (4008) would never trigger. Here the
  socket's send buffer and the transport's high-water mark are fixed and small, so a client
  that does not read stops the connection's writer within a few dozen KiB and the frames that
  follow stay in the mailbox, where ``limits.outgoing_queue_size`` bounds them.
- **Shutdown.** On exit uvicorn closes every WebSocket at once with 1012, before the app's
  lifespan shutdown runs, so a ``send`` being stored at that moment would never be answered.
  Here a connection that registered a shutdown handler is asked to close itself instead: it
  answers (or fails) what it already received, then closes with 1001. uvicorn waits for it.

The endpoint reaches these through :class:`TransportControl`, found in the ASGI scope under
``extensions[EXTENSION]``; under any other server the key is absent and the gateway falls
back to plain ASGI (no abort, uvicorn's own shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

log = logging.getLogger(__name__)

EXTENSION = "chat.transport"
"""The ASGI scope extension under which the endpoint finds its :class:`TransportControl`."""

SEND_BUFFER_BYTES = 64 * 1024
"""The socket's kernel send buffer (Linux reports and uses about twice this)."""
WRITE_BUFFER_HIGH = 64 * 1024
"""Bytes buffered in the transport before ``send`` waits for the client to read."""
WRITE_BUFFER_LOW = 16 * 1024
"""Bytes below which a waiting ``send`` may go on."""


class TransportControl:
    """What a gateway connection may do to its socket beyond ASGI."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.shutdown_handler: Callable[[], None] | None = None

    def abort(self) -> None:
        """Drop the socket without flushing (a client that stopped reading never drains it)."""
        self._transport.abort()

    def on_shutdown(self, handler: Callable[[], None] | None) -> None:
        """Have server shutdown call ``handler`` instead of closing the socket with 1012.

        The handler must close the WebSocket soon; uvicorn waits for the connection to end.
        """
        self.shutdown_handler = handler


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with bounded send buffers and app-driven graceful shutdown."""

    control: TransportControl | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock: Any = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            except OSError:  # not every transport has a real socket (tests, TLS wrappers)
                log.debug("could not bound the socket's send buffer", exc_info=True)
        if isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH, low=WRITE_BUFFER_LOW)

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope: dict[str, Any] | None = getattr(self, "scope", None)
        if scope is not None and self.transport is not None:
            # The ASGI task is created but has not run yet, so it sees this extension.
            self.control = TransportControl(self.transport)
            scope["extensions"][EXTENSION] = self.control

    def shutdown(self) -> None:
        control = self.control
        handler = control.shutdown_handler if control is not None else None
        if control is None or handler is None or self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        control.shutdown_handler = None  # once: uvicorn may call shutdown again
        handler()
