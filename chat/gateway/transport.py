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
  one ``transport.write``. Without a negotiated extension a server frame is just a header and
  the UTF-8 payload (servers never mask), so the header is built here instead of through
  websockets' ``Frame`` objects — the same bytes, at a fraction of the cost per frame.
- **Direct delivery of received frames.** Its ASGI ``receive`` goes through a queue, a task
  wake-up of the reading coroutine and Starlette, and uvicorn pauses the socket's reading for
  every frame queued and resumes it when the queue is read (two ``epoll_ctl`` system calls per
  received frame). With :meth:`TransportControl.on_frame` the connection gets each text or
  binary frame by a plain call from ``data_received``; disconnects still arrive through ASGI.

The endpoint reaches these through :class:`TransportControl`, found in the ASGI scope under
``extensions[EXTENSION]`` (:func:`transport_control`). The gateway has no other I/O path:
under any other server the key is absent and the endpoint refuses the WebSocket.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State

Event = Request | Response | Frame
"""What the websockets protocol parses from received bytes."""

FrameReceiver = Callable[[str | bytes], None]
"""Takes each complete text (``str``) or binary (``bytes``) frame a client sent."""

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

    def __init__(self, transport: asyncio.Transport, protocol: GatewayWebSocketProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.shutdown_handler: Callable[[], None] | None = None

    def write_texts(self, texts: Sequence[str]) -> None:
        """Send ``texts`` as text frames, in order, with one transport write (no await).

        The ASGI ``send`` costs a trip through Starlette and uvicorn and a socket write per
        frame; a connection's writer drains its mailbox in batches instead. Call it after
        :meth:`wait_writable`, like ``send`` it raises once the client is gone.
        """
        self._protocol.write_texts(texts)

    @property
    def unsent_bytes(self) -> int:
        """Bytes written but not yet taken by the kernel: it shrinks as the client reads."""
        return self._transport.get_write_buffer_size()

    @property
    def writable(self) -> bool:
        """Whether the transport takes more data now (it is not paused)."""
        return self._protocol.writable.is_set()

    def on_frame(self, receiver: FrameReceiver) -> None:
        """Have every frame the client sends from now on delivered to ``receiver``, by a plain
        call from ``data_received``, instead of through ASGI ``receive``.

        Frames already queued for ASGI go to ``receiver`` first (in order); disconnects keep
        arriving through ASGI ``receive``. ``receiver`` must not raise: an exception would
        reach the event loop.
        """
        self._protocol.set_receiver(receiver)

    def pause_reading(self) -> None:
        """Stop reading the socket: the client's frames wait in the kernel's buffers (and then
        its own) until :meth:`resume_reading`. Frames of the read under way are still delivered.
        """
        self._protocol.pause_frames()

    def resume_reading(self) -> None:
        """Read the socket again after :meth:`pause_reading` (no-op when not paused)."""
        self._protocol.resume_frames()

    @property
    def reading_paused(self) -> bool:
        """Whether the socket's reading is paused (by :meth:`pause_reading` or by uvicorn)."""
        return self._protocol.read_paused

    async def wait_writable(self) -> None:
        """Return once the transport takes more data (at once unless it is paused)."""
        writable = self._protocol.writable
        if not writable.is_set():
            await writable.wait()

    def abort(self) -> None:
        """Drop the socket without flushing (a client that stopped reading never drains it)."""
        self._transport.abort()

    def on_shutdown(self, handler: Callable[[], None] | None) -> None:
        """Have server shutdown call ``handler`` instead of closing the socket with 1012.

        The handler must close the WebSocket soon; uvicorn waits for the connection to end.
        """
        self.shutdown_handler = handler


def transport_control(scope: Mapping[str, Any]) -> TransportControl | None:
    """The connection's :class:`TransportControl`, or None when the WebSocket is not served by
    :class:`GatewayWebSocketProtocol` (which the gateway needs)."""
    control = scope.get("extensions", {}).get(EXTENSION)
    return control if isinstance(control, TransportControl) else None


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with bounded send buffers and app-driven graceful shutdown."""

    control: TransportControl | None = None
    receiver: FrameReceiver | None = None
    stashed: collections.deque[Event] | None = None
    """Events parsed but not yet handled because reading is paused (see :meth:`pause_frames`)."""

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
        """Frame every text and write all of them to the transport at once; the checks are
        those of uvicorn's ``send``.

        With an extension negotiated (permessage-deflate) every frame goes through the
        websockets protocol, which applies it; without one the frame is the header and the
        payload, built here (:func:`text_frame_header`).
        """
        if self.disconnected:
            raise ClientDisconnected()
        if not self.handshake_complete or self.close_sent or self.initial_response is not None:
            raise RuntimeError("cannot send text frames: the WebSocket is not open")
        conn = self.conn
        if conn.extensions or conn.expect_continuation_frame or conn.state is not State.OPEN:
            try:
                for text in texts:
                    conn.send_text(text.encode())
            except InvalidState:
                raise ClientDisconnected() from None
            self.transport.write(b"".join(conn.data_to_send()))
            return
        out = conn.data_to_send()  # whatever websockets queued itself (normally nothing)
        for text in texts:
            data = text.encode()
            out.append(text_frame_header(len(data)))
            out.append(data)
        self.transport.write(b"".join(out))

    def set_receiver(self, receiver: FrameReceiver) -> None:
        """See :meth:`TransportControl.on_frame`."""
        queued: list[Any] = []
        while not self.queue.empty():
            queued.append(self.queue.get_nowait())
        self.receiver = receiver
        # Resumed before the queued frames go: the receiver may pause reading again for them.
        self.resume_frames()  # uvicorn paused reading when it queued a frame for ASGI
        for i, message in enumerate(queued):
            if message["type"] != "websocket.receive":
                for rest in queued[i:]:  # a disconnect, and anything after it, stays for ASGI
                    self.queue.put_nowait(rest)
                break
            text = message.get("text")
            receiver(text if text is not None else message.get("bytes") or b"")

    def handle_events(self) -> None:
        """uvicorn's, except that with a receiver a pause takes effect at once: the events
        of the current read that follow it wait in ``stashed`` until :meth:`resume_frames`.
        One read can hold thousands of (compressed) frames; delivering them all regardless
        would leave the receiver's queue bounded only by what one read decompresses to."""
        if self.receiver is None:
            super().handle_events()
            return
        stashed = self.stashed
        if stashed is None:
            stashed = self.stashed = collections.deque()
        stashed.extend(self.conn.events_received())
        self.deliver_stashed()

    def deliver_stashed(self) -> None:
        """Handle stashed events in order until they are done or reading is paused."""
        stashed = self.stashed
        while stashed and not self.read_paused:
            event = stashed.popleft()
            if isinstance(event, Request):
                self.handle_connect(event)
            elif isinstance(event, Frame):
                opcode = event.opcode
                if opcode is Opcode.CONT:
                    self.handle_cont(event)
                elif opcode is Opcode.TEXT:
                    self.handle_text(event)
                elif opcode is Opcode.BINARY:
                    self.handle_bytes(event)
                elif opcode is Opcode.PING:
                    self.handle_ping()
                elif opcode is Opcode.PONG:
                    self.handle_pong(event)
                elif opcode is Opcode.CLOSE:
                    self.handle_close(event)

    def pause_frames(self) -> None:
        """See :meth:`TransportControl.pause_reading`. It shares uvicorn's ``read_paused``
        flag: with a receiver uvicorn queues no frames, and when the app sends its close frame
        uvicorn resumes reading by that flag, which the closing handshake needs."""
        if not self.read_paused and not self.transport.is_closing():
            self.read_paused = True
            self.transport.pause_reading()

    def resume_frames(self) -> None:
        """See :meth:`TransportControl.resume_reading`."""
        if self.read_paused:
            self.read_paused = False
            self.deliver_stashed()  # may pause again
            if not self.read_paused and not self.transport.is_closing():
                self.transport.resume_reading()

    def send_receive_event_to_app(self) -> None:
        receiver = self.receiver
        if receiver is None:
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # like uvicorn: after our close frame, late frames are discarded
        if self.curr_msg_data_type == "text":
            try:
                text = bytes(data).decode()
            except UnicodeDecodeError:
                self.logger.info("Invalid UTF-8 sequence received from client.")
                self.conn.send_close(1007)
                self.handle_parser_exception()
                return
            receiver(text)
        else:
            receiver(bytes(data))

    def shutdown(self) -> None:
        control = self.control
        handler = control.shutdown_handler if control is not None else None
        if control is None or handler is None or self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        control.shutdown_handler = None  # once: uvicorn may call shutdown again
        handler()


_SHORT_HEADERS = [bytes((0x81, n)) for n in range(126)]


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame with a payload of ``length`` bytes
    (RFC 6455 section 5.2: FIN and opcode 1, then a 7-bit, 16-bit or 64-bit length)."""
    if length < 126:
        return _SHORT_HEADERS[length]
    if length < 65536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")
