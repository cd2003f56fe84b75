"""The uvicorn WebSocket protocol the gateway runs on: bounded buffers and graceful shutdown.

uvicorn's ``websockets-sansio`` protocol is a good adapter, but two of its defaults defeat the
gateway's guarantees and one costs it CPU, so ``chat serve`` (and the tests' ``run_server``)
use this subclass:

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

- **Batched writes.** Its ASGI ``send`` writes one frame per call, through Starlette and
  uvicorn, with one socket write each; a fanned-out message costs several frames per
  connection. :meth:`TransportControl.write_texts` frames a batch of texts and writes them with
  one ``transport.write``.

The endpoint reaches these through :class:`TransportControl`, found in the ASGI scope under
``extensions[EXTENSION]``; under any other server the key is absent and the gateway falls
back to plain ASGI (no abort, uvicorn's own shutdown).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
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

    def __init__(
        self, transport: asyncio.Transport, protocol: GatewayWebSocketProtocol | None = None
    ) -> None:
        self._transport = transport
        self._protocol = protocol
        self.shutdown_handler: Callable[[], None] | None = None

    @property
    def can_send_batches(self) -> bool:
        """Whether :meth:`write_texts` is available (it needs the gateway's own protocol)."""
        return self._protocol is not None

    def write_texts(self, texts: Sequence[str]) -> None:
        """Send ``texts`` as text frames, in order, with one transport write (no await).

        The ASGI ``send`` costs a trip through Starlette and uvicorn and a socket write per
        frame; a connection's writer drains its mailbox in batches instead. Call it after
        :meth:`wait_writable`, like ``send`` it raises once the client is gone.
        """
        protocol = self._protocol
        assert protocol is not None, "write_texts needs GatewayWebSocketProtocol"
        protocol.write_texts(texts)

    async def wait_writable(self) -> None:
        """Return once the transport takes more data (at once unless it is paused)."""
        protocol = self._protocol
        if protocol is not None and not protocol.writable.is_set():
            await protocol.writable.wait()

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
            self.control = TransportControl(self.transport, self)
            scope["extensions"][EXTENSION] = self.control

    def write_texts(self, texts: Sequence[str]) -> None:
        """Frame every text (through the websockets protocol, so extensions apply) and write
        all of them to the transport at once; the checks are those of uvicorn's ``send``."""
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError("cannot send text frames: the WebSocket is not open")
        conn = self.conn
        try:
            for text in texts:
                conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(conn.data_to_send()))

    def shutdown(self) -> None:
        control = self.control
        handler = control.shutdown_handler if control is not None else None
        if control is None or handler is None or self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        control.shutdown_handler = None  # once: uvicorn may call shutdown again
        handler()
