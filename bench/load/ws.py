"""The load generators' WebSocket connection: a thin adapter over ``picows``.

The generators share the machine's cores with the gateway they measure, so their CPU per frame
is taken from the system under test. ``picows`` parses frames in C (Cython) straight from the
socket's ``data_received`` and calls :meth:`PicowsClient.on_ws_frame` once per frame, in
arrival order, with no task, stream reader or queue per frame; it masks client frames and
answers pings itself. What it leaves to its user, and this adapter adds for the bench:

- **frames that arrive with the upgrade response** are handed to the listener before
  ``ws_connect`` returns: they are kept until :meth:`PicowsClient.listen` and then delivered
  first, in order;
- **fragmented messages** are reassembled (picows delivers frames, not messages);
- **the server's close** is echoed and the connection dropped (picows reports a CLOSE frame
  and leaves the answer to the listener), and one **close code** is kept for the bench's
  ``close_<code>`` errors: the server's (1005 if its close carried none), the code picows sent
  on a protocol violation by the server (1002 and the like), or 1006 for a connection that
  ended without a close;
- a send on a closing or closed connection raises :class:`ClosedError` (picows drops it
  silently), so the generator stops counting sends that cannot be answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from picows import (
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSProtocolError,
    WSTransport,
    ws_connect,
)

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_NO_INFO = WSCloseCode.NO_INFO
ABNORMAL = 1006
NO_STATUS = 1005
PONG = b'{"type":"pong"}'


class ClosedError(ConnectionError):
    """A send on a connection that is closing or closed."""


class PicowsClient(WSListener):
    """One client connection; :meth:`listen` says where its text messages go."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.close_code: int | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fragments: list[bytes] = []
        self._fragment_type = _TEXT
        self._early: list[bytes] = []
        self._on_text: Callable[[bytes], None] = self._early.append
        self._on_close: Callable[[], None] | None = None
        self._own_close = False

    @classmethod
    async def connect(cls, url: str, headers: Mapping[str, str] | None = None) -> PicowsClient:
        """Open ``ws://host:port/path`` with ``headers`` in the upgrade request.

        The caller bounds the whole connect with its own timeout (picows' 5 s handshake limit
        is off: with thousands of connections opening, a busy gateway may take longer). No
        redirects are followed. A refused upgrade raises ``picows.WSHandshakeError``.

        The socket is uvloop's own transport (as the earlier hand-written client used), not
        picows' default ``aiofastnet`` one: in interleaved write-load runs the ``aiofastnet``
        transport left the generators' CPU per message unchanged but cost the *gateway* 6-17 %
        more CPU per message, and the gateway is what the bench measures.
        """
        _, client = await ws_connect(
            cls,
            url,
            extra_headers=dict(headers or {}),
            websocket_handshake_timeout=None,
            max_redirects=0,
            use_aiofastnet=False,
        )
        assert isinstance(client, cls)
        return client

    def listen(self, on_text: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        """Deliver each text message's payload to ``on_text`` (those that came before this call
        first) and call ``on_close`` once the connection has ended (now, if it already has)."""
        early, self._early = self._early, []
        self._on_text = on_text
        self._on_close = on_close
        for payload in early:
            on_text(payload)
        if self.closed.done():
            on_close()

    # ------------------------------------------------------------------ picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _TEXT and frame.fin and not self._fragments:
            self._on_text(frame.get_payload_as_bytes())
        elif msg_type is _CLOSE:
            self._closing(transport, frame)
        elif msg_type is _CONTINUATION:
            if not self._fragments:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR, "a continuation frame without a message"
                )
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                payload = b"".join(self._fragments)
                self._fragments = []
                if self._fragment_type is _TEXT:
                    self._on_text(payload)
        elif msg_type is _TEXT or msg_type is _BINARY:
            if self._fragments:
                raise WSProtocolError(
                    WSCloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one"
                )
            if not frame.fin:
                self._fragment_type = msg_type
                self._fragments = [frame.get_payload_as_bytes()]
        # Binary messages are not part of the protocol; pongs: this client sends no pings
        # (picows answers the server's pings itself).

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.close_code is None:
            handshake = transport.close_handshake
            sent = handshake.sent if handshake is not None else None
            # A close picows sent on its own (not asked for by close()) answered a protocol
            # violation by the server; otherwise nothing was received: abnormal.
            if sent is not None and not self._own_close:
                self.close_code = sent.code.value
            else:
                self.close_code = ABNORMAL
        if not self.closed.done():
            self.closed.set_result(None)
        if self._on_close is not None:
            self._on_close()

    def _closing(self, transport: WSTransport, frame: WSFrame) -> None:
        code = frame.get_close_code()
        self.close_code = NO_STATUS if code == _NO_INFO else code.value
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK if code == _NO_INFO else code)
        transport.disconnect()

    # ------------------------------------------------------------------ sending

    def send(self, payload: bytes) -> None:
        """Send a text frame (UTF-8 ``payload``; buffered by the transport: this never waits)."""
        transport = self.transport
        if self.close_code is not None or transport is None or transport.is_close_frame_sent:
            raise ClosedError(f"the connection is closed ({self.close_code})")
        transport.send(_TEXT, payload)

    @property
    def closed_by_us(self) -> bool:
        """Whether this side started the close (:meth:`close` or :meth:`drop`)."""
        return self._own_close

    def drop(self) -> None:
        """Cut the connection without a closing handshake (an attacker leaving; a server that
        stopped reading would not take the close frame anyway)."""
        transport = self.transport
        self._own_close = True
        if transport is not None:
            transport.disconnect(graceful=False)

    @property
    def write_buffer_size(self) -> int:
        """Bytes sent but not yet taken by the socket (a server that stops reading grows it)."""
        transport = self.transport
        if transport is None:
            return 0
        size: int = transport.underlying_transport.get_write_buffer_size()
        return size

    async def close(self, code: int = 1000) -> None:
        """Send a close frame and wait for the server's close (or the connection's end), at most
        5 s; then drop the connection."""
        transport = self.transport
        if transport is None:
            return
        if self.close_code is None and not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code))
            self._own_close = True
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 5)
        except TimeoutError:
            transport.disconnect(graceful=False)


def handle_common_frame(
    frame: dict[str, Any],
    ws: PicowsClient,
    welcomed: asyncio.Future[None],
    replies: dict[str, asyncio.Future[dict[str, Any]]],
) -> None:
    """What a generator's connection does with a frame that is none of its own business:
    answer the server's ``ping``, note ``welcome``, and hand an answer (by ``ref``) to the
    request waiting for it."""
    kind = frame.get("type")
    if kind == "ping":
        with contextlib.suppress(ClosedError):
            ws.send(PONG)
    elif kind == "welcome":
        if not welcomed.done():
            welcomed.set_result(None)
    elif (ref := frame.get("ref")) in replies:
        waiting = replies.pop(ref)
        if not waiting.done():  # a request given up on (cancelled) takes no late answer
            waiting.set_result(frame)
